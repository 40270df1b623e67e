"""Real replies and error lines, quoted as providers' documentation and public issue reports
show them, each with its source, the stage it came from, and what Postroom must make of it:
the code and whether it is retried.

Each text is explained twice: as a user pastes it into ``postroom explain`` (wrapped by
whatever library printed it), and as the worker meets it (a ``DeliveryError`` with the reply
code and text, classified by ``diagnose_error``). Both must agree with the table.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from postroom.diagnosis import CODES
from postroom.diagnosis.classify import diagnose_error
from postroom.diagnosis.explain import explain_text
from postroom.diagnosis.pasted import parse_reply
from postroom.errors import DeliveryError

M365 = "Microsoft 365"
OUTLOOK = "Outlook.com"
ACS = "Azure Communication Services"
EXCHANGE = "Exchange Server"
GMAIL = "Gmail / Google Workspace"
SES = "Amazon SES"
SENDGRID = "SendGrid"
MAILGUN = "Mailgun"
POSTMARK = "Postmark"
BREVO = "Brevo"
POSTFIX = "Postfix"
EXIM = "Exim"
GENERIC = "generic SMTP server"
PYTHON = "Python (smtplib / ssl)"
NODE = "Node.js (nodemailer / OpenSSL)"


@dataclass(frozen=True)
class Case:
    provider: str
    stage: str
    text: str
    code: str
    transient: bool
    source: str

    @property
    def id(self) -> str:
        return f"{self.provider}: {self.text[:60]}"


GH = "https://github.com/"
POSTFIX_SRC = "https://github.com/vdukhovni/postfix/blob/master/postfix/src/"

TABLE: tuple[Case, ...] = (
    # ------------------------------------------------------------ Microsoft 365 / Outlook.com
    Case(
        M365,
        "auth",
        "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the "
        "Tenant. Visit https://aka.ms/smtp_auth_disabled for more information. "
        "[MN2PR05CA0004.namprd05.prod.outlook.com 2023-09-12T20:59:57.214Z 08DBB276B7E699C4]",
        "auth_disabled",
        False,
        GH + "simonrob/email-oauth2-proxy/issues/193",
    ),
    Case(
        M365,
        "auth",
        "ERROR Send Error: Invalid login: 535 5.7.139 Authentication unsuccessful, "
        "SmtpClientAuthentication is disabled for the Tenant. Visit "
        "https://aka.ms/smtp_auth_disabled for more information. "
        "[TY1PR01CA0183.jpnprd01.prod.outlook.com]",
        "auth_disabled",
        False,
        GH + "nodemailer/nodemailer/issues/1484",
    ),
    Case(
        M365,
        "auth",
        "The SMTP server requires a secure connection or the client was not authenticated. The "
        "server response was: 5.7.57 Client not authenticated to send mail. Error: 535 5.7.139 "
        "Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant. Visit "
        "https://aka.ms/smtp_auth_disabled for more information.",
        "auth_disabled",
        False,
        GH + "MicrosoftDocs/OfficeDocs-Exchange/issues/3124",
    ),
    Case(
        OUTLOOK,
        "auth",
        "javax.mail.AuthenticationFailedException: 535 5.7.139 Authentication unsuccessful, "
        "basic authentication is disabled. [BM1P287CA0015.INDP287.PROD.OUTLOOK.COM]",
        "auth_disabled",
        False,
        GH + "rpremraj/mailR/issues/107",
    ),
    Case(
        OUTLOOK,
        "auth",
        "response: '535 5.7.139 Authentication unsuccessful, basic authentication is disabled. "
        "[PN0PR01CA0024.INDPRD01.PROD.OUTLOOK.COM 2025-01-26T18:54:30.055Z 08DD3DD7D75D7743]',",
        "auth_disabled",
        False,
        GH + "nodemailer/nodemailer/issues/1714",
    ),
    Case(
        M365,
        "auth",
        "535 5.7.139 Authentication unsuccessful, the user credentials were incorrect.",
        "auth_failed",
        False,
        GH + "freescout-help-desk/freescout/issues/4930",
    ),
    Case(
        M365,
        "auth",
        "MailKit.Security.AuthenticationException: AuthenticationInvalidCredentials: 5.7.3 "
        "Authentication unsuccessful [BN3PR03CA0067.namprd03.prod.outlook.com]",
        "auth_failed",
        False,
        GH + "jstedfast/MailKit/issues/700",
    ),
    Case(
        M365,
        "auth",
        "5.7.3 Authentication unsuccessful [DB6P18901CA0015.EURP189.PROD.OUTLOOK.COM]",
        "auth_failed",
        False,
        GH + "mageplaza/magento-2-smtp/issues/108",
    ),
    Case(
        M365,
        "auth",
        "This error :Error: 535 5.7.3 Authentication unsuccessful  means  the SMTP "
        "authentication of your Office 365 account hasn't been enabled.",
        "auth_failed",
        False,
        GH + "Azure/Commercial-Marketplace-SaaS-Accelerator/issues/777",
    ),
    Case(
        ACS,
        "auth",
        "I receive at `client.Authenticate(oauth2);` the error **535: 5.7.3 Authentication "
        "unsuccessful**",
        "auth_failed",
        False,
        GH + "jstedfast/MailKit/issues/1967",
    ),
    Case(
        M365,
        "mail",
        "SMTP< 530 5.7.57 Client not authenticated to send mail",
        "auth_required",
        False,
        GH + "simonrob/email-oauth2-proxy/issues/315",
    ),
    Case(
        M365,
        "mail",
        "< smtp.office365.com[IP.255.232.194]:587: 530 5.7.57 Client not authenticated to send "
        "mail. [US22278CA0034.US7P278.PROD.OUTLOOK.COM 2024-10-24",
        "auth_required",
        False,
        GH + "tarickb/sasl-xoauth2/issues/96",
    ),
    Case(
        M365,
        "mail",
        "##[error]The SMTP server requires a secure connection or the client was not "
        "authenticated. The server response was: 5.7.57 SMTP; Client was not authenticated to "
        "send anonymous mail during MAIL FROM",
        "auth_required",
        False,
        GH + "renevanosnabrugge/SendEmail-BuildTask/issues/49",
    ),
    Case(
        M365,
        "mail",
        "550 5.7.60 SMTP; Client does not have permissions to send as this sender",
        "sender_not_authorized",
        False,
        GH + "gophish/gophish/issues/1600",
    ),
    Case(
        M365,
        "data",
        'Expected response code 250 but got code "550", with message "550 5.7.60 SMTP; Client '
        "does not have permissions to send as this sender [MW2PR1901MB2155.namprd19.prod.outlook"
        ".com]",
        "sender_not_authorized",
        False,
        GH + "swiftmailer/swiftmailer/issues/1030",
    ),
    Case(
        OUTLOOK,
        "data",
        "554 5.2.252 SendAsDenied; delightgx46@outlook.com not allowed to send as "
        "security@sfb.com; STOREDRV.Submission.Exception:SendAsDeniedException."
        "MapiExceptionSendAsDenied; Failed to process message due to a permanent exception with "
        "message [BeginDiagnosticData]Cannot submit message.",
        "sender_not_authorized",
        False,
        GH + "gophish/gophish/issues/2900",
    ),
    Case(
        EXCHANGE,
        "mail",
        "550 5.7.1 Client does not have permissions to send as this sender",
        "sender_not_authorized",
        False,
        GH + "nodemailer/nodemailer/issues/145",
    ),
    Case(
        EXCHANGE,
        "mail",
        "5.7.1 Client was not authenticated",
        "auth_required",
        False,
        GH + "jstedfast/MailKit/issues/1265",
    ),
    Case(
        M365,
        "data",
        "aiosmtplib.errors.SMTPDataError: (432, '4.3.2 Concurrent connections limit exceeded. "
        "Visit https://aka.ms/concurrent_sending for more information. "
        "[Hostname=OS0PR01MB6099.jpnprd01.prod.outlook.com]')",
        "rate_limited",
        True,
        GH + "sabuhish/fastapi-mail/issues/75",
    ),
    Case(
        OUTLOOK,
        "data",
        "Error: Message failed: 432 4.3.2 Concurrent connections limit exceeded.",
        "rate_limited",
        True,
        GH + "nodemailer/nodemailer/issues/1613",
    ),
    Case(
        M365,
        "data",
        "554 5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException",
        "quota_exceeded",
        False,
        GH + "MicrosoftDocs/OfficeDocs-Support/issues/1150",
    ),
    Case(
        M365,
        "data",
        "'550 5.1.90 Your message can't be sent because you've reached your daily limit for "
        "message recipients'",
        "quota_exceeded",
        False,
        GH + "MicrosoftDocs/OfficeDocs-Exchange/issues/2729",
    ),
    Case(
        M365,
        "auth",
        "error says '504 5.7.4 Unrecognized authentication type'",
        "auth_unsupported",
        False,
        GH + "tobychui/zoraxy/issues/312",
    ),
    # --------------------------------------------------------------- Gmail / Google Workspace
    Case(
        GMAIL,
        "auth",
        "535-5.7.8 Username and Password not accepted. Learn more at\n535 5.7.8 "
        "https://support.google.com/mail/?p=BadCredentials t66sm6271302pjb.45 - gsmtp",
        "auth_failed",
        False,
        "https://pastebin.com/uXqSaYa4",
    ),
    Case(
        GMAIL,
        "auth",
        "Error: Invalid login: 535-5.7.8 Username and Password not accepted. For more "
        "information, go to\n535 5.7.8  https://support.google.com/mail/?p=BadCredentials "
        "2adb3069b0e04-521f38d7f71sm2899713e87.194 - gsmtp",
        "auth_failed",
        False,
        GH + "nodemailer/nodemailer/issues/1656",
    ),
    Case(
        GMAIL,
        "auth",
        "smtplib.SMTPAuthenticationError: (535, b'5.7.8 Username and Password not accepted. "
        "Learn more at\\n5.7.8 https://support.google.com/mail/?p=BadCredentials "
        "b11sm4936857pgr.20 - gsmtp')",
        "auth_failed",
        False,
        GH + "kaushalvivek/Mass-Mailing-Script/issues/2",
    ),
    Case(
        GMAIL,
        "auth",
        "Failed to send test email to 'howellbp@gmail.com': gomail: could not send email 1: "
        "Auth: 535 5.7.8 Username and Password not accepted.",
        "auth_failed",
        False,
        GH + "gogs/gogs/discussions/7382",
    ),
    Case(
        GMAIL,
        "auth",
        "{ Error: Invalid login: 534-5.7.9 Application-specific password required. Learn more "
        "at\n534 5.7.9  https://support.google.com/mail/?p=InvalidSecondFactor "
        "o13sm2119833lfg.90 - gsmtp",
        "app_password_required",
        False,
        GH + "nodemailer/nodemailer/issues/1116",
    ),
    Case(
        GMAIL,
        "auth",
        "Configuration Error: (534, b'5.7.9 Application-specific password required. For more "
        "information, go to\\n5.7.9  https://support.google.com/mail/?p=InvalidSecondFactor "
        "ffacd0b85a97d-368119970e7sm1809147f8f.21 - gsmtp')",
        "app_password_required",
        False,
        GH + "Der-Henning/tgtg/issues/517",
    ),
    Case(
        GMAIL,
        "auth",
        "5.7.9 Application-specific password required. Learn more at 5.7.9 "
        "https://support.google.com/mail/?p=InvalidSecondFactor h26sm30121397pfq.64 - gs",
        "app_password_required",
        False,
        GH + "mageplaza/magento-2-smtp/issues/181",
    ),
    Case(
        GMAIL,
        "auth",
        "Error: Invalid login: 454 4.7.0 Too many login attempts, please try again later. "
        "4-20020a056000154400b00203812ca383sm10857871wry.78 - gsmtp",
        "rate_limited",
        True,
        GH + "nodemailer/nodemailer/issues/1388",
    ),
    Case(
        GMAIL,
        "auth",
        "ERROR: Mail Error on Auth: 454 4.7.0 Too many login attempts, please try again later. "
        "Learn more at\n4.7.0  https://support.google.com/mail/answer/7126229 "
        "h6-20020a0561220b6600b0049d21a8f4b6sm1103848vkf.11 - gsmtp",
        "rate_limited",
        True,
        GH + "AnalogJ/justvanish/issues/13",
    ),
    Case(
        GMAIL,
        "mail",
        "SMTP Error: 530 5.7.0 Must issue a STARTTLS command first. m129sm2162575qkc.2 - gsmtp",
        "starttls_required",
        False,
        GH + "passbolt/passbolt_docker/issues/25",
    ),
    Case(
        GMAIL,
        "mail",
        "com.sun.mail.smtp.SMTPSendFailedException: 530 5.7.0 Must issue a STARTTLS command "
        "first. pe5sm5768337wjb.15 - gsmtp",
        "starttls_required",
        False,
        GH + "virtualzone/tubewarder/issues/29",
    ),
    Case(
        GMAIL,
        "data",
        '{{nocatch,{permanent_failure,<<"550 5.4.5 Daily user sending quota exceeded. '
        'o65sm25351206pga.71 - gsmtp\\r\\n">>}}',
        "quota_exceeded",
        False,
        GH + "gen-smtp/gen_smtp/issues/140",
    ),
    Case(
        GMAIL,
        "data",
        "dev.onepub.util.internet.email.EmailException: 550-5.4.5 Daily user sending limit "
        "exceeded. For more information on Gmail 550-5.4.5 sending limits go to 550 5.4.5 "
        "https://support.google.com/a/answer/166852 d75a77b69052e-4535f85b3d9sm7257481cf.29 - "
        "gsmtp",
        "quota_exceeded",
        False,
        GH + "onepub-dev/onepub/issues/543",
    ),
    Case(
        GMAIL,
        "rcpt",
        "SMTP error from remote mail server after RCPT TO:<ahoj@jakubonderka.cz>:\n"
        "550-5.1.1 The email account that you tried to reach does not exist. Please try\n"
        "550-5.1.1 double-checking the recipient's email address for typos or\n"
        "550-5.1.1 unnecessary spaces. Learn more at\n"
        "550 5.1.1  https://support.google.com/mail/?p=NoSuchUser s19si71853ejd.408 - gsmtp",
        "recipient_rejected",
        False,
        GH + "MISP/MISP/issues/6481",
    ),
    Case(
        GMAIL,
        "rcpt",
        "<mgit@manichord.com>: host aspmx.l.google.com[74.125.71.26] said: 550-5.1.1 The email "
        "account that you tried to reach does not exist. Please try 550-5.1.1 double-checking "
        "the recipient's email address for typos or 550-5.1.1 unnecessary spaces. Learn more at "
        "550 5.1.1 https://support.google.com/mail/?p=NoSuchUser c29si2155252wrc.110 - gsmtp "
        "(in reply to RCPT TO command)",
        "recipient_rejected",
        False,
        GH + "maks/MGit/issues/198",
    ),
    # -------------------------------------------------------------------------- Amazon SES
    Case(
        SES,
        "auth",
        "AWS SES 535 Authentication Credentials Invalid",
        "auth_failed",
        False,
        GH + "knadh/listmonk/issues/2160",
    ),
    Case(
        SES,
        "auth",
        'Error while trying to send test email: {"code":"EAUTH","response":"535 Authentication '
        'Credentials Invalid","responseCode":535,"command":"AUTH PLAIN"}',
        "auth_failed",
        False,
        GH + "sandstorm-io/sandstorm/issues/2734",
    ),
    Case(
        SES,
        "mail",
        "host email-smtp.ap-southeast-1.amazonaws.com[18.138.111.200] said: 530 Authentication "
        "required (in reply to MAIL FROM command)",
        "auth_required",
        False,
        GH + "Billionmail/BillionMail/issues/156",
    ),
    Case(
        SES,
        "mail",
        "Error: Mail command failed: 530 Authentication required",
        "auth_required",
        False,
        GH + "jhuckaby/Cronicle/issues/265",
    ),
    Case(
        SES,
        "data",
        "454 Throttling failure: Maximum sending rate exceeded",
        "rate_limited",
        True,
        "https://docs.aws.amazon.com/ses/latest/dg/manage-sending-quotas-errors.html",
    ),
    Case(
        SES,
        "data",
        "454 Throttling failure: Daily message quota exceeded",
        "quota_exceeded",
        False,
        "https://docs.aws.amazon.com/ses/latest/dg/manage-sending-quotas-errors.html",
    ),
    Case(
        SES,
        "data",
        "[2016-08-04 12:20:39] main.CRITICAL: Zend_Mail_Protocol_Exception: Message rejected: "
        "Email address is not verified. The following identities failed the check in region "
        "US-EAST-1: abc@xyz.in",
        "sender_not_authorized",
        False,
        GH + "magepal/magento2-gmail-smtp-app/issues/17",
    ),
    # ---------------------------------------------------------------------------- SendGrid
    Case(
        SENDGRID,
        "mail",
        "response: '550 The from address does not match a verified Sender Identity. Mail cannot "
        "be sent until this error is resolved. Visit https://sendgrid.com/docs/for-developers/"
        "sending-email/sender-identity/ to see the Sender Identity requirements',",
        "sender_not_authorized",
        False,
        GH + "sahat/hackathon-starter/issues/1083",
    ),
    Case(
        SENDGRID,
        "mail",
        "Net::SMTPFatalError: 550 The from address does not match a verified Sender Identity. "
        "Mail cannot be sent until this error is resolved. Visit https://sendgrid.com/docs/"
        "for-developers/sending-email/sender-identity/ to see the Sender Identity requirements",
        "sender_not_authorized",
        False,
        GH + "chatwoot/chatwoot/issues/9188",
    ),
    Case(
        SENDGRID,
        "auth",
        "Ran into problems sending email at Line 1553. Response: 535 Authentication failed: Bad "
        "username / password",
        "auth_failed",
        False,
        GH + "sendgrid/docs/issues/2491",
    ),
    Case(
        SENDGRID,
        "auth",
        "SMTPAuthenticationError: (535, 'Authentication failed: Bad username / password')",
        "auth_failed",
        False,
        GH + "CoderBounty/coderbounty/issues/342",
    ),
    Case(
        SENDGRID,
        "auth",
        "it's responding with the following error message:- \"Authentication failed: The "
        'provided authorization grant is invalid, expired, or revoked".',
        "auth_failed",
        False,
        GH + "sendgrid/sendgrid-nodejs/issues/1105",
    ),
    Case(
        SENDGRID,
        "auth",
        ">> AUTH LOGIN << 334 VXNlcm5hbWU6 >> aW5zdXI= << 334 UGFzc3dvcmQ6 >> aW5zdXIyMDE2 << "
        "451 Authentication failed: Maximum credits exceeded !! Expected response code 235 but "
        'got code "451"',
        "quota_exceeded",
        False,
        GH + "mautic/mautic/issues/8721",
    ),
    Case(
        SENDGRID,
        "mail",
        "SMTP Error: 550 Unauthenticated senders not allowed",
        "auth_required",
        False,
        GH + "sendgrid/docs/issues/6473",
    ),
    Case(
        SENDGRID,
        "data",
        'message: Expected response code 250 but got code "451", with message "451 You\'ve '
        "exceeded your messaging limits",
        "quota_exceeded",
        False,
        GH + "WA-WF-Bot/WA-WF-Bot-Public/issues/282",
    ),
    # ---------------------------------------------------------- Mailgun, Postmark, Brevo
    Case(
        MAILGUN,
        "auth",
        "Net::SMTPAuthenticationError: 535 5.7.0 Mailgun is not loving your login or password",
        "auth_failed",
        False,
        GH + "pivorakmeetup/pivorak-web-app/issues/712",
    ),
    Case(
        POSTMARK,
        "mail",
        "(The 'From' address you supplied (redacted) is not a Sender Signature on your account. "
        "Please add and confirm this address in order to be able to use it in the 'From' field "
        "of your messages.):",
        "sender_not_authorized",
        False,
        GH + "feedadoc/feedadoc/pull/110",
    ),
    Case(
        BREVO,
        "auth",
        "Failed: Authentication failed: 535 5.7.0 Invalid login or password",
        "auth_failed",
        False,
        GH + "marcpope/borgbackupserver/issues/16",
    ),
    # ------------------------------------------------------------- Postfix, Exim and others
    Case(
        POSTFIX,
        "rcpt",
        "554 5.7.1 xxxxx@163.com: Relay access denied",
        "relay_denied",
        False,
        GH + "docker-mailserver/docker-mailserver/issues/19",
    ),
    Case(
        POSTFIX,
        "rcpt",
        "NOQUEUE: reject: RCPT from localhost[::1]: 454 4.7.1 <my@email.com>: Relay access "
        "denied; from=<no-replay@test.site.example.com> to=<my@email.com> proto=SMTP "
        "helo=<test.site.example.com>",
        "relay_denied",
        True,  # Postfix's defer_unauth_destination: deliberately temporary, so retried
        GH + "wader/postfix-relay/issues/107",
    ),
    Case(
        GENERIC,
        "rcpt",
        "550 relay not permitted!",
        "relay_denied",
        False,
        GH + "postalserver/postal/issues/647",
    ),
    Case(
        POSTFIX,
        "rcpt",
        "SMTP error from remote mail server after RCPT TO:<mirabellug@aful.org>:\n450 4.2.0 "
        "<mirabellug@aful.org>: Recipient address rejected: Greylisted,\nsee "
        "http://postgrey.schweikert.ch/help/aful.org.html",
        "greylisted",
        True,
        GH + "schweikert/postgrey/issues/84",
    ),
    Case(
        POSTFIX,
        "rcpt",
        "4.2.0 <ppl@nayarit.be>: Recipient address rejected: Greylisted for 300 seconds or its "
        "been rejected.",
        "greylisted",
        True,
        GH + "schweikert/postgrey/issues/86",
    ),
    Case(
        POSTFIX,
        "data",
        "milter-reject: END-OF-MESSAGE from forward12h.cmail.yandex.net[87.250.230.154]: 4.7.1 "
        "Try again later; from=<user@example1.com> to=<rcpt@example.com> proto=ESMTP",
        "greylisted",
        True,
        GH + "vstakhov/rmilter/issues/88",
    ),
    Case(
        EXIM,
        "connect",
        "SMTP -> FROM SERVER:421 Too many concurrent SMTP connections; please try again later.",
        "rate_limited",
        True,
        GH + "PHPMailer/PHPMailer/issues/2070",
    ),
    Case(
        EXIM,
        "auth",
        "Couldn't connect with these settings \nInvalid login: 535 Incorrect authentication data",
        "auth_failed",
        False,
        GH + "n8n-io/n8n/issues/34376",
    ),
    Case(
        GENERIC,
        "auth",
        "Server answer - 535 Error: Authentication credentials invalid",
        "auth_failed",
        False,
        GH + "Flolagale/mailin/issues/106",
    ),
    Case(
        GENERIC,
        "auth",
        "0|main  | Error: Invalid login: 535 Error: authentication failed",
        "auth_failed",
        False,
        GH + "xuess/puppeteer-sign/issues/2",
    ),
    Case(
        GENERIC,
        "auth",
        "SMTP Error (535): Authentication failed",
        "auth_failed",
        False,
        GH + "roundcube/roundcubemail/issues/6826",
    ),
    Case(
        GENERIC,
        "data",
        'Expected response code 250 but got code "530", with message "530 From/Sender name is '
        'not valid "',
        "sender_not_authorized",
        False,
        GH + "postalserver/postal/issues/570",
    ),
    Case(
        GENERIC,
        "data",
        "An Outgoing server (SMTP) error occurred while sending mail. The server responded:  "
        "5.7.1 <DATA>: Data command rejected: only 10 messages per day",
        "quota_exceeded",
        False,
        GH + "root-io/vmail/issues/67",
    ),
    Case(
        GENERIC,
        "data",
        "User me@site.com has exceeded its 24-hour sending limit. Messages to 25 recipients out "
        "of 25",
        "quota_exceeded",
        False,
        GH + "nodemailer/nodemailer/issues/1137",
    ),
    Case(
        GENERIC,
        "rcpt",
        "Invalid Addresses 550 5.1.1 no such user",
        "recipient_rejected",
        False,
        GH + "mjl-/mox/issues/189",
    ),
    Case(
        GENERIC,
        "rcpt",
        "S: 550-Requested action not taken: mailbox unavailable\nS: 550 Failure sending mail. "
        "Try again later",
        "recipient_rejected",
        False,
        GH + "jstedfast/MailKit/issues/968",
    ),
    Case(
        GENERIC,
        "data",
        "said: 554 Failed:\n    Malformed MIME field: ARC-Message-Signature: i=1; a=rsa-sha256;\n"
        "    c=relaxed/relaxed [0x0D] ... (in reply to end of DATA command)",
        "unknown",
        False,
        GH + "mailcow/mailcow-dockerized/issues/471",
    ),
    # ----------------------------------- Postfix 3.7 (Cyrus SASL), as it answered Postroom
    # Each reply is what a real Postfix 3.7 sent; the source is the Postfix code that writes it.
    Case(
        POSTFIX,
        "mail",
        "450 4.7.1 Error: too much mail from 127.0.0.1",
        "rate_limited",
        True,
        POSTFIX_SRC + "smtpd/smtpd.c",  # smtpd_client_message_rate_limit (anvil)
    ),
    Case(
        POSTFIX,
        "mail",
        "501 5.1.7 Bad sender address syntax",
        "sender_invalid",
        False,
        POSTFIX_SRC + "smtpd/smtpd.c",  # mail_cmd: MAIL FROM it cannot parse
    ),
    Case(
        POSTFIX,
        "auth",
        "535 5.7.8 Error: authentication failed: no mechanism available",
        "auth_unsupported",
        False,
        POSTFIX_SRC + "xsasl/xsasl_cyrus_server.c",  # sasl_errstring(SASL_NOMECH)
    ),
    Case(
        POSTFIX,
        "rcpt",
        "554 5.7.1 Service unavailable; Client host [1.2.3.4] blocked using zen.spamhaus.org; "
        "https://www.spamhaus.org/query/ip/1.2.3.4",
        "ip_blocklisted",
        False,
        POSTFIX_SRC + "smtpd/smtpd_check.c",  # reject_rbl_client
    ),
    Case(
        POSTFIX,
        "rcpt",
        "454 4.7.1 <you@example.org>: Relay access denied",
        "relay_denied",
        True,
        POSTFIX_SRC + "smtpd/smtpd_check.c",  # defer_unauth_destination
    ),
    Case(
        POSTFIX,
        "rcpt",
        "554 5.7.1 <you@example.org>: Recipient address rejected: Access denied",
        "recipient_rejected",  # auth_required when the worker knows a login was skipped
        False,
        POSTFIX_SRC + "smtpd/smtpd_check.c",  # the "reject" restriction
    ),
    Case(
        POSTFIX,
        "connect",
        "421 4.3.2 Service shutting down, closing transmission channel",
        "server_unavailable",
        True,
        POSTFIX_SRC + "smtpd/smtpd.c",  # a greeting refused while Postfix stops
    ),
    # ---------------------------------------------- the client side: TLS and connections
    Case(
        PYTHON,
        "connect",
        "cannot connect to 127.0.0.1:2599: Connect call failed ('127.0.0.1', 2599)",
        "connection_refused",
        True,
        "https://docs.python.org/3/library/asyncio-eventloop.html#asyncio.loop.sock_connect",
    ),
    Case(
        PYTHON,
        "connect",
        "ConnectionRefusedError: [Errno 111] Connect call failed ('127.0.0.1', 2599)",
        "connection_refused",
        True,
        "https://docs.python.org/3/library/exceptions.html#ConnectionRefusedError",
    ),
    Case(
        PYTHON,
        "tls",
        "Error: Email could not be delivered due to [SSL: WRONG_VERSION_NUMBER] wrong version "
        "number (_ssl.c:1000)",
        "tls_wrong_mode",
        False,
        GH + "makeplane/plane/issues/7089",
    ),
    Case(
        NODE,
        "tls",
        "Error: 6924:error:1408F10B:SSL routines:ssl3_get_record:wrong version number:c:\\ws\\"
        "deps\\openssl\\openssl\\ssl\\record\\ssl3_record.c:332:",
        "tls_wrong_mode",
        False,
        GH + "dawidd6/action-send-mail/issues/124",
    ),
    Case(
        PYTHON,
        "tls",
        "ssl.SSLCertVerificationError: [SSL: CERTIFICATE_VERIFY_FAILED] certificate verify "
        "failed: Hostname mismatch, certificate is not valid for 'smtp.mailgun.com'. "
        "(_ssl.c:1081)",
        "tls_hostname_mismatch",
        False,
        GH + "home-assistant/core/issues/174821",
    ),
    Case(
        POSTFIX,
        "tls",
        "server certificate verification failed for mx-mibc-fr-03.mailinblack.com"
        "[40.89.154.15]:25: num=62:hostname mismatch",
        "tls_hostname_mismatch",
        False,
        GH + "Mailu/Mailu/issues/3027",
    ),
    Case(
        NODE,
        "connect",
        "Also, i get a timeout error when switched port to 465\n\n```connect ETIMEDOUT "
        "52.96.184.50:465```",
        "connection_timeout",
        True,
        GH + "dawidd6/action-send-mail/issues/124",
    ),
    Case(
        PYTHON,
        "auth",
        'smtplib.py", line 696, in login\n    "SMTP AUTH extension not supported by server.")\n'
        "smtplib.SMTPNotSupportedError: SMTP AUTH extension not supported by server.",
        "auth_unsupported",
        False,
        GH + "eugene-eeo/mailthon/issues/33",
    ),
    Case(
        PYTHON,
        "auth",
        'raise SMTPServerDisconnected("Connection unexpectedly closed")\n'
        "smtplib.SMTPServerDisconnected: Connection unexpectedly closed",
        "server_unavailable",
        True,
        GH + "NeloF4/brutegmail/issues/5",
    ),
    Case(
        PYTHON,
        "mail",
        "raise SMTPServerDisconnected('please run connect() first')\n"
        "smtplib.SMTPServerDisconnected: please run connect() first",
        "server_unavailable",
        True,
        GH + "HandyGuySoftware/dupReport/issues/129",
    ),
)


def test_the_table_is_big_enough_and_every_row_has_a_source() -> None:
    replies = [case for case in TABLE if case.provider not in (PYTHON, NODE)]
    assert len(replies) >= 60
    providers = {case.provider for case in TABLE}
    for named in (M365, OUTLOOK, ACS, GMAIL, SES, SENDGRID, MAILGUN, POSTMARK, POSTFIX):
        assert named in providers
    for case in TABLE:
        assert case.source.startswith("https://"), case.id
        assert case.code in CODES, case.id
    assert len({case.text for case in TABLE}) == len(TABLE)


@pytest.mark.parametrize("case", TABLE, ids=lambda c: c.id)
def test_explain_reads_the_pasted_text(case: Case) -> None:
    answer = explain_text(case.text, stage=case.stage)
    assert (answer.diagnosis.code, answer.diagnosis.transient) == (case.code, case.transient)


def test_every_table_text_is_understood_without_a_stage() -> None:
    # What a user does most: paste the line and nothing else.
    wrong = [
        case.id
        for case in TABLE
        if (
            (answer := explain_text(case.text)).diagnosis.code,
            answer.diagnosis.transient,
        )
        != (case.code, case.transient)
    ]
    assert wrong == []


_REPLIES = [case for case in TABLE if (p := parse_reply(case.text)) and p.reply_code]


@pytest.mark.parametrize("case", _REPLIES, ids=lambda c: c.id)
def test_the_worker_classifies_the_same_reply_the_same_way(case: Case) -> None:
    parsed = parse_reply(case.text)
    assert parsed is not None
    assert parsed.reply_code is not None
    error = DeliveryError(
        "the server refused", stage=case.stage, reply_code=parsed.reply_code, reply_text=parsed.text
    )
    diagnosis = diagnose_error(error)
    assert (diagnosis.code, diagnosis.transient) == (case.code, case.transient)
    assert diagnosis.reply is not None
    assert diagnosis.reply.startswith(str(parsed.reply_code))


def test_provider_specific_words_name_the_provider() -> None:
    by_text = {case.text: case for case in TABLE}
    acs = explain_text(
        "I receive at `client.Authenticate(oauth2);` the error **535: 5.7.3 Authentication "
        "unsuccessful**",
        stage="auth",
    )
    assert "Azure Communication Services" in acs.diagnosis.cause
    relay = explain_text(
        "SMTP< 530 5.7.57 Client not authenticated to send mail", stage="mail"
    ).diagnosis
    assert "smtp.office365.com" in relay.cause
    assert "connector" in relay.fix
    sendgrid = explain_text(
        "SMTPAuthenticationError: (535, 'Authentication failed: Bad username / password')"
    ).diagnosis
    assert "apikey" in sendgrid.fix
    ses = explain_text(
        next(t for t in by_text if "failed the check in region" in t), stage="data"
    ).diagnosis
    assert "Amazon SES" in ses.cause
    assert "region" in ses.fix
