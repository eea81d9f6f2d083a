"""The search's progress lines on stdout (`[hournas] ...`)."""


def log(message):
    """Prints one progress line, flushed."""
    print(f'[hournas] {message}', flush=True)
