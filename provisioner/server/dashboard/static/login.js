// The sign-in page: a pasted API token, or the one-time link `dockyard dashboard` gives
// (its code in the URL's fragment, which never reaches a server log), for a session.

const form = document.getElementById("login-form");
const error = document.getElementById("login-error");

async function signIn(body) {
  error.textContent = "";
  const reply = await fetch("/auth/login", {
    method: "POST",
    headers: { "content-type": "application/json" },
    credentials: "same-origin",
    body: JSON.stringify(body),
  });
  if (reply.ok) {
    location.replace("/");
    return;
  }
  let data = {};
  try { data = await reply.json(); } catch { data = {}; }
  const detail = typeof data.detail === "string" ? data.detail : "Sign-in failed";
  error.textContent = data.hint ? `${detail}: ${data.hint}` : detail;
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  const token = document.getElementById("token").value.trim();
  if (!token) {
    error.textContent = "Paste an API token first";
    return;
  }
  signIn({ token });
});

const link = new URLSearchParams(location.hash.slice(1)).get("link");
if (link) {
  history.replaceState(null, "", "/login"); // the code is used once: off the address bar
  signIn({ link });
}
