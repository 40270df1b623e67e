"""The OAuth2 client that SMTP logins with XOAUTH2 use. Not a transport: the SMTP transport
asks it for tokens; every request goes through :mod:`postroom.net.client`.

- :mod:`.client`: the token cache a transport holds, and the factory that picks its grant;
- :mod:`.grants`: client credentials, JWT bearer (Google) and refresh token (Microsoft);
- :mod:`.signing`: the RS256 JWT assertion of a Google service account;
- :mod:`.endpoint`: one token endpoint, its answers and its refusals;
- :mod:`.device`: the device-code sign-in behind ``postroom oauth login``;
- :mod:`.tokens`: the access token, the endpoint's answer and the protocols (grant, keeper).
"""
