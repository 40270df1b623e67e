"""What the admin API, the dashboard and the CLI share; none calls another's routes."""
