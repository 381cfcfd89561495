"""`esc50 analyze`: folder trees of recordings to reviewed detections (:mod:`.run`)."""
