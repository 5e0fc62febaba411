"""stream_app/data."""
