"""One module per measured claim; each returns the numbers its test and the report print."""
