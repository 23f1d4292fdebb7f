"""Members in and out as files: CSV/XLSX imports run as jobs, member lists download as CSV.

``reading`` turns a file into rows (format and encoding detection), ``columns`` maps headers to
member fields, ``rows`` checks one row into member values or a reason, ``writer`` applies a batch
(fast or normal mode), ``jobs`` keeps the stored file, the preview and the job runner,
``servicer`` is crowdpack.customer.v1.ImportService, ``export`` the member download, ``cli`` the
``crowdpack import`` command. docs/import.md describes the behaviour.
"""
