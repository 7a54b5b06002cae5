# The fleet AMI with its hosts reading the state from AWS AppConfig:
#
#   packer build -var-file=appconfig.pkrvars.hcl ampd-fleet.pkr.hcl
#
# appconfig:APPLICATION/ENVIRONMENT/PROFILE, names or ids. The build instance may run ampd
# against it; `ampd bake` keeps the last good copy under /var/lib/ampd/source/ and leaves
# no configuration session in the image: each instance starts its own, and AppConfig's
# deployment decides which version it gets. See docs/fleet.md ("Staged rollouts with AWS
# AppConfig"). Checked by tests/package/test_fleet_examples.py with Debian's
# `packer validate -syntax-only -var-file`.
state = "appconfig:fleet/prod/ampd"
