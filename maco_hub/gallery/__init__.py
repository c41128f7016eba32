"""Galleries: rows in memory, their keys and records, the file format and its checks, folders with
their lock, stored evaluations, the dataset card, the HTML viewer and its thumbnails, notebook
display and contact sheets, and the Hub."""
