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

locals {
  short = replace(var.task_id, "-", "")
  name  = "dockyard-${substr(var.task_name, 0, 40)}-${substr(local.short, 0, 8)}"
  volumes = {
    workspace = "dockyard-${substr(local.short, 0, 12)}-workspace"
    home      = "dockyard-${substr(local.short, 0, 12)}-home"
  }
  labels = join(" ", [for key, value in var.labels : "--label '${key}=${value}'"])
  limits = join(" ", compact([
    var.memory == null ? "" : "--memory ${var.memory} --memory-swap ${var.memory}",
    var.cpus == null ? "" : "--cpus ${var.cpus}",
    var.pids == null ? "" : "--pids-limit ${var.pids}",
    var.restart == "no" ? "" : "--restart ${var.restart}",
  ]))
  hardening = join(" ", concat(
    ["--init", "--cap-drop ALL", "--security-opt no-new-privileges"],
    [for cap in var.cap_add : "--cap-add ${cap}"],
  ))
  uid = split(":", var.agent_user)[0]
  gid = split(":", var.agent_user)[1]
  # docker cp keeps the archive's owners: the agent user must be able to read the token.
  copy_bridge = join(" ", [
    "tar -C '${var.bridge_dir}' --owner=${local.uid} --group=${local.gid} --numeric-owner",
    "-cf - bridge.pyz bridge.json token",
    "| docker cp - ${local.name}:${var.bridge_container_dir}",
  ])
}

resource "terraform_data" "volumes" {
  input = local.volumes

  provisioner "local-exec" {
    command = join(" && ", [
      for volume in values(local.volumes) : "docker volume create ${local.labels} ${volume}"
    ])
  }

  # Destroy-time provisioners may only use self: what they need is kept in input.
  provisioner "local-exec" {
    when    = destroy
    command = "docker volume rm --force ${join(" ", values(self.input))}"
  }
}

resource "terraform_data" "container" {
  depends_on = [terraform_data.volumes]
  input      = { name = local.name }

  provisioner "local-exec" {
    command = <<-EOT
      docker container inspect ${local.name} >/dev/null 2>&1 || docker create \
        --name ${local.name} ${local.labels} \
        --user ${var.agent_user} --workdir ${var.workdir} --env HOME=${var.agent_home} \
        --volume ${local.volumes.workspace}:${var.workdir} \
        --volume ${local.volumes.home}:${var.agent_home} \
        ${local.limits} ${local.hardening} \
        --publish 127.0.0.1:${var.bridge_port}:${var.bridge_container_port} \
        ${var.image} \
        python3 ${var.bridge_container_dir}/bridge.pyz \
        --config ${var.bridge_container_dir}/bridge.json
    EOT
  }

  provisioner "local-exec" {
    when    = destroy
    command = "docker rm --force ${self.input.name}"
  }
}

# Start or stop: replaced whenever `running` changes (or the container is new).
resource "terraform_data" "power" {
  triggers_replace = [var.running, terraform_data.container.id]
  input            = { name = local.name, running = var.running }

  provisioner "local-exec" {
    command = (var.running
      ? "${local.copy_bridge} && docker start ${local.name}"
      : "docker stop -t ${var.stop_timeout} ${local.name}"
    )
  }
}

output "container" {
  value = terraform_data.container.output.name
}

output "bridge_endpoint" {
  value = "http://127.0.0.1:${var.bridge_port}"
}
