"""What the admin API, the dashboard and the CLI share: message pages, get, retry and cancel
(:mod:`.messages`), a tenant's settings, body exposure and SMTP test (:mod:`.tenants`), and
the SMTP listener's logins and client settings (:mod:`.smtp_logins`).
None of those three calls another's routes or commands; each calls this package."""
