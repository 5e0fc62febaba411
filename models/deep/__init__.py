"""models/deep."""
