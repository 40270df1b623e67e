"""The OAuth2 client that SMTP logins with XOAUTH2 use: the token endpoint, the grants, JWT
signing, the access-token cache and the device-code sign-in (:mod:`.client`). Not a transport:
the SMTP transport asks it for tokens; every request goes through :mod:`postroom.net.client`."""
