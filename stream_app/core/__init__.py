"""stream_app/core."""
