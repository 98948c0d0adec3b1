"""Finishing a take (issue #10): foot lock, in place / root motion, seamless loop, trim and
ease. bpy-free numpy on top of the motion core; ``pipeline.finish`` runs the chosen options in
a fixed order on a copy of the raw take and either returns the finished motion with a report,
or raises ``FinishingError`` with the take left unchanged."""
