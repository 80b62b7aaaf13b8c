"""Running Notifier: what a dispatch batch reports (log lines and counters), the health and
readiness checks, and the Prometheus metrics (README "Running in production")."""
