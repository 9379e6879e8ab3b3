// make email-lint: each HTML file given is checked with doiuse-email (the caniemail.com data)
// for the mail clients below. A finding is either listed in ACCEPTED, with why it does no
// harm (a progressive enhancement, or a client that drops an attribute we only add for
// accessibility), or it fails the check: nothing else may creep into the templates.
"use strict";
const fs = require("fs");
const { doIUseEmail } = require("@jsx-email/doiuse-email");

const CLIENTS = ["outlook.*", "gmail.*", "apple-mail.*", "yahoo.*", "samsung-email.*", "thunderbird.*",
                 "aol.*", "protonmail.*", "hey.*", "fastmail.*"];
const ACCEPTED = {
  ":hover": "underline on hover only",
  "@media": "dark mode and the phone layout; without them the light 600 px table layout stays",
  "border-radius": "square corners instead of round",
  "white-space": "a long chip may wrap",
  "overflow": "only the hidden preheader (display:none, 1 px, page colour; mso-hide:all for Outlook)",
  "display:none": "only the hidden preheader (also 1 px high, in the page colour)",
  "<body> element": "the column repeats the body's font and colour",
  "Type selector": "the body rule; the column repeats it",
  "role attribute": "dropped: layout tables are then read as tables",
  "aria-label attribute": "dropped: links read their visible text (arXiv, PDF…) in the card's cell",
  "width attribute": "the inline width:100%;max-width:600px holds the column",
  "lang attribute": "language detection by the client",
  "text-decoration": "links keep the client's own underline",
  "word-break": "a word longer than the column (a URL-like title) is not broken: the mail gets wider there, as it did everywhere before",
};

let failed = 0;
for (const file of process.argv.slice(2)) {
  const html = fs.readFileSync(file, "utf8");
  const found = new Map();
  for (const client of CLIENTS) {
    for (const error of doIUseEmail(html, { emailClients: [client] }).errors || []) {
      const match = error.match(/^`(.+?)` is not supported by `(.+?)`/);
      const feature = match ? match[1] : error;
      if (!found.has(feature)) found.set(feature, new Set());
      found.get(feature).add(match ? match[2] : client);
    }
  }
  console.log(file);
  for (const [feature, clients] of [...found].sort()) {
    const why = ACCEPTED[feature];
    if (!why) failed += 1;
    console.log(`  ${why ? "accepted" : "NOT ACCEPTED"}: ${feature} (${[...clients].join(", ")})${why ? ": " + why : ""}`);
  }
}
if (failed) {
  console.log(`${failed} finding(s) not accepted: fix the template, or accept them in tests/email-lint/lint.js saying why`);
  process.exit(1);
}
