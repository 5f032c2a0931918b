"""Chapter companions: explorer widgets, their static counterparts for the
published book, and chapter-specific mathematics (one module per chapter).

Import the module you need, e.g. ``from cnnbook.explore import convolution``.
"""
