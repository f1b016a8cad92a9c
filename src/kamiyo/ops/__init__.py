"""Operations: metrics, request ids and access logs, database error classification, backups."""
