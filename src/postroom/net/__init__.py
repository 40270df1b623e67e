"""Outbound network access with the SSRF guard: :mod:`.targets` resolves and checks every
address, :mod:`.client` is the guarded HTTP client that HTTP delivery, OAuth2 and Jsonnet
``https://`` bodies share."""
