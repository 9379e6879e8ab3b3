"""The benchmark harness: ``python -m flows.bench`` (or ``make bench``).

Generates a seeded day of listings and a seeded subscriber set, starts Prefect's temporary
API server (timed on its own) and a counting SMTP sink in a separate process, runs the real
daily flow end to end in a fresh process, then measures in the same run the references each
stage is judged against: the delivery ceiling (bare aiosmtplib sending the very same message
bytes over the same number of connections), the render floor (bare Jinja, no CSS, no MIME)
and premailer per email; finally reruns the same day, which must send nothing. Prints a
markdown table and writes ``bench.json`` and ``bench.md`` to ``--out``.

Modules: `corpus` (inputs), `sink` (SMTP sink process), `flowrun` (the measured flow),
`capture` (messages and render references), `blast` (delivery ceiling), `harness` (order
of play), `report` (targets and table).
"""
