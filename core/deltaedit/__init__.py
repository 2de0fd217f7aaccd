"""DeltaEdit."""
