"""Every query of the reporting service, by concern: ``rows`` (the entities' current states and
history), ``figures`` (counters, references and documents of each scope), ``generations`` (the live
generation, rebuild runs, consumers' positions) and ``batch`` (a small batch's writes in one statement).
"""
