"""`murmur import`: captures, dumps and exports read from files into the same pipeline as crawls (normalise,
match terms, detect language, store in batches). No Scrapy here: files are read as streams.

formats.py says which format a file is in and which parser reads its records; reading.py streams the
records (plain, gzip, zstandard; NDJSON, JSON arrays, CSV); importer.py keeps, stores and counts them;
generic.py maps the columns of any CSV or NDJSON file onto a post (`--map`)."""
