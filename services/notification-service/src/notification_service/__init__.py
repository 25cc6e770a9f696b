"""notification-service: playbooks that turn lifecycle events into messages, sent once."""
