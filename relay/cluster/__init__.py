"""Many relays, one city: camera leases in the shared database, redirects to a camera's owner, failover and
drain. See README.md beside this file."""
