"""What the admin API, the dashboard and the CLI share: message pages, get, retry and cancel
(:mod:`.messages`), and a tenant's settings, body exposure and SMTP test (:mod:`.tenants`).
None of those three calls another's routes or commands; each calls this package."""
