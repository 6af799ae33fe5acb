"""The web dashboard (`murmur web`, and `murmur serve` at `/` on `service.http`): a Starlette application over
the report builders (reports/) and store/ queries, served by uvicorn; the page is static HTML, one script and
uPlot (from npm, copied in by `make install`), so it loads nothing from the network."""
