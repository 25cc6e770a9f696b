"""The retention team's operator console: pages over the four services' HTTP APIs."""
