"""The small runtime every service shares: settings, db, outbox, inbox, auth, errors, logs."""
