"""Sphinx extension: keep every page of the book readable with no internet.

Notebook outputs can carry HTML that loads files from a CDN; matplotlib's
``Animation.to_jshtml()``, for one, links Font Awesome 4 from a CDN for its play/step
buttons. When each page is written this extension

1. rewrites the URLs listed in the config value ``cnnbook_offline_urls``
   (``{cdn_url: path_under__static}``) to the copy served from ``_static``, and
2. warns (a build error under ``-W``) about any other script, stylesheet, image or
   frame in the page body that would still be fetched from another host.
"""

from __future__ import annotations

import re

from sphinx.util import logging

logger = logging.getLogger(__name__)

# <script src=...>, <link href=...>, <img src=...>, ... pointing at another host
EXTERNAL = re.compile(
    r"<(script|link|img|iframe|source|video|audio|embed)\b[^>]*?"
    r"\b(src|href)\s*=\s*[\"']((?:https?:)?//[^\"']+)",
    flags=re.IGNORECASE,
)


def localize(app, pagename, templatename, context, doctree):
    body = context.get("body")
    if not body:
        return
    pathto = context["pathto"]
    for url, local in app.config.cnnbook_offline_urls.items():
        if url in body:
            body = body.replace(url, pathto(f"_static/{local}", 1))
    for match in EXTERNAL.finditer(body):
        tag, _attr, url = match.groups()
        logger.warning(
            "<%s> loads %s from the internet: the page would break offline; serve "
            "a copy from _static (cnnbook_offline_urls in _config.yml) or drop it",
            tag,
            url,
            location=pagename,
            type="cnnbook",
            subtype="offline",
        )
    context["body"] = body


def setup(app):
    app.add_config_value("cnnbook_offline_urls", {}, "html")
    app.connect("html-page-context", localize)
    return {"version": "0.1", "parallel_read_safe": True, "parallel_write_safe": True}
