"""Scrapy commands of the project (COMMANDS_MODULE): `scrapy crawl` that exits 1 when its run failed."""
