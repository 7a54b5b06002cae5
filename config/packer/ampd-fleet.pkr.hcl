# A fleet AMI with ampd baked in: Debian 12, ampd from its apt repository, the state's
# location in /etc/default/ampd, per-instance state dropped by `ampd bake` at the end.
# Instances started from the image run ampd with their own identity (IMDS) and the same
# state (SSM); the first pass on each renders everything with the new instance's labels.
#
#   packer build -var region=eu-west-1 -var state=ssm:/fleet/prod/ampd ampd-fleet.pkr.hcl
#   packer build -var-file=appconfig.pkrvars.hcl ampd-fleet.pkr.hcl    # AWS AppConfig
#
# Checked by tests/package/test_fleet_examples.py with Debian's `packer validate -syntax-only`.

variable "region" {
  type    = string
  default = "eu-west-1"
}

variable "state" {
  type        = string
  default     = "ssm:/fleet/prod/ampd"
  description = "where the fleet's hosts read their state: ssm:NAME, s3://BUCKET/KEY or appconfig:APPLICATION/ENVIRONMENT/PROFILE"
}

variable "apt_repository" {
  type        = string
  default     = "deb [signed-by=/usr/share/keyrings/ampd.gpg] https://apt.example.com/ampd"
  description = "the ampd repository; the provisioner adds the image's suite (bookworm or trixie) and main"
}

variable "apt_key_file" {
  type        = string
  default     = "ampd.gpg"
  description = "the ampd repository's signing key (binary keyring), beside this template"
}

source "amazon-ebs" "ampd-fleet" {
  region        = var.region
  instance_type = "t3.small"
  ssh_username  = "admin"
  ami_name      = "ampd-fleet-${formatdate("YYYYMMDD-hhmm", timestamp())}"
  source_ami_filter {
    filters = {
      name                = "debian-12-amd64-*"
      virtualization-type = "hvm"
      root-device-type    = "ebs"
    }
    owners      = ["136693071363"] # Debian
    most_recent = true
  }
  tags = {
    "ampd:image" = "fleet"
  }
}

build {
  sources = ["source.amazon-ebs.ampd-fleet"]

  provisioner "file" {
    source      = var.apt_key_file
    destination = "/tmp/ampd.gpg"
  }

  provisioner "shell" {
    environment_vars = ["AMPD_STATE=${var.state}", "APT_REPOSITORY=${var.apt_repository}"]
    inline = [
      "set -eux",
      "sudo install -m 0644 /tmp/ampd.gpg /usr/share/keyrings/ampd.gpg",
      "echo \"$APT_REPOSITORY $(. /etc/os-release && echo $VERSION_CODENAME) main\" | sudo tee /etc/apt/sources.list.d/ampd.list",
      "sudo apt-get update -q",
      "sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -q ampd",
      "echo \"AMPD_STATE=$AMPD_STATE\" | sudo tee /etc/default/ampd",
      # Debian's prometheus.service (ampd Recommends the package) would hold :9090, the
      # port ampd's Prometheus listens on by default
      "sudo systemctl disable --now prometheus.service || true",
      "sudo systemctl enable ampd.service",
      # ampd may have run on the build instance: stop it (and its children), then drop
      # what belongs to the build instance. bake keeps the workspace id, the clientToken
      # and the cached copy of the state (no AppConfig session), and says what it removed.
      "sudo systemctl stop ampd.service",
      "sudo -u ampd env STATE_DIRECTORY=/var/lib/ampd RUNTIME_DIRECTORY=/run/ampd ampd bake",
    ]
  }
}
