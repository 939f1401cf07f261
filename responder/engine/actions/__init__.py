"""One module per mitigation action: the I/O that carries out a plan `responder.logic.planning` made.

Stage: act. Each module sends the bodies the plan holds (and only those); none decides whether to act:
that was planning's and guarding's job, and `responder.engine.processing` calls them in order.
"""
