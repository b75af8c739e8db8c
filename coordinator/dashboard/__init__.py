"""The dashboard: web pages for the coordinator's operator and for researchers, served by
`coordinator serve` under /ui.

It is a client of the API and nothing more. Every page calls the API in-process as the signed-in
caller, with their own token, so it shows exactly what that token may see and adds no second way
into the data (api.py). Sign-in keeps the token in an HttpOnly cookie; every form carries a CSRF
token (session.py). Everything it needs (styles, its one script) is served from static/: no CDN.
"""
