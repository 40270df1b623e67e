// Sends one email with nodemailer (what SuperTokens uses), as told by a JSON argument:
// {host, port, secure, user, pass, ca, from, to, subject, text, html}.
"use strict";
const fs = require("fs");
const nodemailer = require("nodemailer");

const o = JSON.parse(process.argv[2]);
const transport = nodemailer.createTransport({
  host: o.host,
  port: o.port,
  secure: o.secure, // true: implicit TLS; false: STARTTLS, required below
  requireTLS: !o.secure,
  auth: { user: o.user, pass: o.pass },
  tls: { ca: [fs.readFileSync(o.ca)], servername: "localhost" },
});
transport
  .sendMail({ from: o.from, to: o.to, subject: o.subject, text: o.text, html: o.html })
  .then((info) => {
    console.log(JSON.stringify({ response: info.response }));
  })
  .catch((err) => {
    console.error(String(err && err.response ? err.response : err));
    process.exit(1);
  });
