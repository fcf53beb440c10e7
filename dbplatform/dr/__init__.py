"""Disaster-recovery logic shared by `scripts.dr` and `scripts.restore_check`: restore points
(points, discover), restoring and deleting instances (restore), verification (verify), the DR
stack's config (stackfile), reports (report) and the restore-check metric (metrics)."""
