"""Web-server access logs as history: `formats` reads lines into requests, `files` opens and
recognises log files, `pages` keeps the page requests a browser made, `load` stores them
as visits through the collector's own enrichment and visit assignment."""
