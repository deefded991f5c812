"""Authentication: device tokens (JWT or an external endpoint) and the admin bearer token."""
