"""What people read: live progress, tables, status, the postmortem and HTML report, the
timeline, and the verbs over one ticket."""
