"""Who may call the API: users, roles, API tokens and the rules of each route."""
