"""stream_app/cli."""
