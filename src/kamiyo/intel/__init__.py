"""Threat-intelligence views of the exploits: a STIX 2.1 bundle, a read-only TAXII 2.1 server and a MISP feed.

Thin, read-only adapters over `kamiyo.exploits.service`: the same filters and limits, no query logic of their
own beyond the paging TAXII and the MISP manifest need. Every object id is derived from the exploit's stable
key (see `ids`), so a re-fetch, from this or another Kamiyo database with the same data, gives the same objects.
"""
