# {{ template.name }}: one Dockyard workspace on the local Docker engine, made by Terraform.
#
# Dockyard renders this file with Jinja2, writes it to $DOCKYARD_HOME/terraform/<task-id>/
# with terraform.tfvars.json beside it, and runs init + plan + apply there. It runs
# offline: only the built-in terraform_data resource is used, its local-exec provisioners
# drive the docker CLI. With a real provider (kreuzwerker/docker) the same workspace is
# docs/examples/terraform-kreuzwerker/.
#
# The workspace matches the Docker backend's: two labelled volumes and one hardened
# container running the bridge, whose files are copied in before every start.
# Contract with Dockyard: `running` says whether the workspace should run (pause = apply
# with false, resume = apply with true, delete = destroy); the outputs `container` and
# `bridge_endpoint` say which container to watch and where its bridge answers.

# Set by Dockyard for every task.
variable "task_id" {
  type = string
}
variable "task_name" {
  type = string
}
variable "instance" {
  type = string
}
variable "template" {
  type = string
}
variable "labels" {
  type = map(string)
}
variable "image" {
  type = string
}
variable "bridge_dir" {
  type        = string
  description = "Host directory holding bridge.pyz, bridge.json and token"
}
variable "bridge_port" {
  type        = number
  description = "Free host port Dockyard picked for the bridge (published on 127.0.0.1)"
}
variable "bridge_container_port" {
  type = number
}
variable "bridge_container_dir" {
  type = string
}
variable "running" {
  type = bool
}
variable "workdir" {
  type = string
}
variable "agent_user" {
  type = string
}
variable "agent_home" {
  type = string
}
variable "memory" {
  type     = string
  nullable = true
}
variable "cpus" {
  type     = number
  nullable = true
}
variable "pids" {
  type     = number
  nullable = true
}
variable "cap_add" {
  type = list(string)
}
variable "restart" {
  type = string
}

# The template's parameters and its terraform.variables.
variable "work_seconds" {
  type = number
}
variable "stop_timeout" {
  type = number
}

# Every value reaches the shell through a provisioner's `environment` and is quoted there
# ("$VAR"): Terraform has no shell quoting, and a value spliced into `command` is code
# (a parameter such as memory = "512m $(id)" would run on the host, as the server's user).
locals {
  short = replace(var.task_id, "-", "")
  name  = "dockyard-${substr(var.task_name, 0, 40)}-${substr(local.short, 0, 8)}"
  volumes = {
    workspace = "dockyard-${substr(local.short, 0, 12)}-workspace"
    home      = "dockyard-${substr(local.short, 0, 12)}-home"
  }
  # one key=value a line: the scripts read them into --label arguments
  labels = join("\n", [for key, value in var.labels : "${key}=${value}"])
  # the variables every script below may use
  env = {
    NAME                  = local.name
    LABELS                = local.labels
    AGENT_USER            = var.agent_user
    AGENT_UID             = split(":", var.agent_user)[0]
    AGENT_GID             = split(":", var.agent_user)[1]
    AGENT_HOME            = var.agent_home
    WORKDIR               = var.workdir
    VOLUME_WORKSPACE      = local.volumes.workspace
    VOLUME_HOME           = local.volumes.home
    MEMORY                = var.memory == null ? "" : var.memory
    CPUS                  = var.cpus == null ? "" : tostring(var.cpus)
    PIDS                  = var.pids == null ? "" : tostring(var.pids)
    RESTART               = var.restart
    CAP_ADD               = join("\n", var.cap_add)
    BRIDGE_PORT           = tostring(var.bridge_port)
    BRIDGE_CONTAINER_PORT = tostring(var.bridge_container_port)
    BRIDGE_DIR            = var.bridge_dir
    BRIDGE_CONTAINER_DIR  = var.bridge_container_dir
    IMAGE                 = var.image
    STOP_TIMEOUT          = tostring(var.stop_timeout)
  }
  # bash: arrays keep each value one argument
  shell       = ["/bin/bash", "-c"]
  read_labels = <<-EOT
    labels=()
    while IFS= read -r label; do
      [ -n "$label" ] && labels+=(--label "$label")
    done <<< "$LABELS"
  EOT
}

resource "terraform_data" "volumes" {
  input = local.volumes

  provisioner "local-exec" {
    interpreter = local.shell
    environment = local.env
    command     = <<-EOT
      set -e
      ${local.read_labels}
      docker volume create "$${labels[@]}" "$VOLUME_WORKSPACE"
      docker volume create "$${labels[@]}" "$VOLUME_HOME"
    EOT
  }

  # Destroy-time provisioners may only use self: what they need is kept in input.
  provisioner "local-exec" {
    when        = destroy
    interpreter = ["/bin/bash", "-c"]
    environment = { VOLUME_WORKSPACE = self.input.workspace, VOLUME_HOME = self.input.home }
    command     = "docker volume rm --force \"$VOLUME_WORKSPACE\" \"$VOLUME_HOME\""
  }
}

resource "terraform_data" "container" {
  depends_on = [terraform_data.volumes]
  input      = { name = local.name }

  provisioner "local-exec" {
    interpreter = local.shell
    environment = local.env
    command     = <<-EOT
      set -e
      docker container inspect "$NAME" >/dev/null 2>&1 && exit 0
      ${local.read_labels}
      limits=()
      [ -n "$MEMORY" ] && limits+=(--memory "$MEMORY" --memory-swap "$MEMORY")
      [ -n "$CPUS" ] && limits+=(--cpus "$CPUS")
      [ -n "$PIDS" ] && limits+=(--pids-limit "$PIDS")
      [ "$RESTART" != no ] && limits+=(--restart "$RESTART")
      caps=()
      while IFS= read -r cap; do
        [ -n "$cap" ] && caps+=(--cap-add "$cap")
      done <<< "$CAP_ADD"
      docker create \
        --name "$NAME" "$${labels[@]}" \
        --user "$AGENT_USER" --workdir "$WORKDIR" --env "HOME=$AGENT_HOME" \
        --volume "$VOLUME_WORKSPACE:$WORKDIR" \
        --volume "$VOLUME_HOME:$AGENT_HOME" \
        "$${limits[@]}" \
        --init --cap-drop ALL --security-opt no-new-privileges "$${caps[@]}" \
        --publish "127.0.0.1:$BRIDGE_PORT:$BRIDGE_CONTAINER_PORT" \
        -- "$IMAGE" \
        python3 -I -S "$BRIDGE_CONTAINER_DIR/bridge.pyz" \
        --config "$BRIDGE_CONTAINER_DIR/bridge.json"
    EOT
  }

  provisioner "local-exec" {
    when        = destroy
    interpreter = ["/bin/bash", "-c"]
    environment = { NAME = self.input.name }
    command     = "docker rm --force \"$NAME\""
  }
}

# Start or stop: replaced whenever `running` changes (or the container is new).
resource "terraform_data" "power" {
  triggers_replace = [var.running, terraform_data.container.id]
  input            = { name = local.name, running = var.running }

  provisioner "local-exec" {
    interpreter = local.shell
    environment = local.env
    # docker cp keeps the archive's owners: the agent user must be able to read the token.
    command = (var.running
      ? <<-EOT
        set -eo pipefail
        tar -C "$BRIDGE_DIR" --owner="$AGENT_UID" --group="$AGENT_GID" --numeric-owner \
          -cf - bridge.pyz bridge.json token \
          | docker cp - "$NAME:$BRIDGE_CONTAINER_DIR"
        docker start "$NAME"
      EOT
      : "docker stop -t \"$STOP_TIMEOUT\" \"$NAME\""
    )
  }
}

output "container" {
  value = terraform_data.container.output.name
}

output "bridge_endpoint" {
  value = "http://127.0.0.1:${var.bridge_port}"
}
