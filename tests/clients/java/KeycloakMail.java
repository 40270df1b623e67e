// Sends one email the way Keycloak's DefaultEmailSenderProvider does: a Jakarta Mail session
// with Keycloak's properties (auth, ssl.enable or starttls.enable, the TLS protocols, server
// identity checked, 10 s timeouts, the truststore's socket factory) and a multipart/alternative
// message of a text and an HTML part in UTF-8.
//
// java -cp jakarta-mail.jar:jakarta-activation.jar KeycloakMail.java \
//     HOST PORT ssl|starttls USER PASSWORD CA_PEM FROM TO SUBJECT TEXT HTML
import jakarta.mail.Message;
import jakarta.mail.Multipart;
import jakarta.mail.Session;
import jakarta.mail.Transport;
import jakarta.mail.internet.InternetAddress;
import jakarta.mail.internet.MimeBodyPart;
import jakarta.mail.internet.MimeMessage;
import jakarta.mail.internet.MimeMultipart;
import java.io.FileInputStream;
import java.security.KeyStore;
import java.security.cert.CertificateFactory;
import java.util.Date;
import java.util.Properties;
import javax.net.ssl.SSLContext;
import javax.net.ssl.TrustManagerFactory;

public class KeycloakMail {
    public static void main(String[] args) throws Exception {
        String host = args[0], port = args[1], mode = args[2], user = args[3], password = args[4];
        Properties props = new Properties();
        props.setProperty("mail.transport.protocol", "smtp");
        props.setProperty("mail.smtp.host", host);
        props.setProperty("mail.smtp.port", port);
        props.setProperty("mail.smtp.auth", "true");
        if (mode.equals("ssl")) {
            props.setProperty("mail.smtp.ssl.enable", "true");
        } else {
            props.setProperty("mail.smtp.starttls.enable", "true");
        }
        props.setProperty("mail.smtp.ssl.protocols", "TLSv1.3 TLSv1.2");
        props.setProperty("mail.smtp.ssl.checkserveridentity", "true");
        props.put("mail.smtp.ssl.socketFactory", trusting(args[5]).getSocketFactory());
        props.setProperty("mail.smtp.timeout", "10000");
        props.setProperty("mail.smtp.connectiontimeout", "10000");
        props.setProperty("mail.smtp.writetimeout", "10000");
        Session session = Session.getInstance(props);

        Multipart multipart = new MimeMultipart("alternative");
        MimeBodyPart text = new MimeBodyPart();
        text.setText(args[9], "UTF-8");
        multipart.addBodyPart(text);
        MimeBodyPart html = new MimeBodyPart();
        html.setContent(args[10], "text/html; charset=UTF-8");
        multipart.addBodyPart(html);

        Message msg = new MimeMessage(session);
        msg.setFrom(new InternetAddress(args[6], "Keycloak", "UTF-8"));
        msg.setHeader("Subject", jakarta.mail.internet.MimeUtility.encodeText(args[8], "UTF-8", "B"));
        msg.setRecipients(Message.RecipientType.TO, InternetAddress.parse(args[7]));
        msg.setContent(multipart);
        msg.saveChanges();
        msg.setSentDate(new Date());

        Transport transport = session.getTransport("smtp");
        try {
            transport.connect(user, password);
            transport.sendMessage(msg, new InternetAddress[] {new InternetAddress(args[7])});
        } finally {
            transport.close();
        }
        System.out.println("sent");
    }

    private static SSLContext trusting(String caPem) throws Exception {
        KeyStore store = KeyStore.getInstance(KeyStore.getDefaultType());
        store.load(null, null);
        try (FileInputStream in = new FileInputStream(caPem)) {
            store.setCertificateEntry("ca", CertificateFactory.getInstance("X.509").generateCertificate(in));
        }
        TrustManagerFactory tmf = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
        tmf.init(store);
        SSLContext context = SSLContext.getInstance("TLS");
        context.init(null, tmf.getTrustManagers(), null);
        return context;
    }
}
