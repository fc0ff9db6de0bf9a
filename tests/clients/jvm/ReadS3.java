// Reads one object from S3 with the AWS SDK for Java v2, once per profile named, as a JVM job would.
// usage: java -cp <classpath> ReadS3.java PROFILES BUCKET KEY   (PROFILES: "a,b" or "-" for the default chain)
// Marks each read at <AWS_ENDPOINT_URL_S3>/__mark__/<profile> first; one JSON line per read.

import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import software.amazon.awssdk.auth.credentials.AwsCredentialsProvider;
import software.amazon.awssdk.auth.credentials.DefaultCredentialsProvider;
import software.amazon.awssdk.auth.credentials.ProfileCredentialsProvider;
import software.amazon.awssdk.regions.Region;
import software.amazon.awssdk.services.s3.S3Client;
import software.amazon.awssdk.services.s3.model.GetObjectRequest;

public class ReadS3 {
  public static void main(String[] args) throws Exception {
    String endpoint = System.getenv("AWS_ENDPOINT_URL_S3");
    String[] profiles = args[0].equals("-") ? new String[] {null} : args[0].split(",");
    // HTTP/1.1: the default asks to upgrade to h2c, which the test's proxy does not pass on.
    HttpClient http = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).build();
    for (String profile : profiles) {
      String mark = profile == null ? "-" : profile;
      http.send(HttpRequest.newBuilder(URI.create(endpoint + "/__mark__/" + mark)).build(),
          HttpResponse.BodyHandlers.discarding());
      AwsCredentialsProvider provider = profile == null
          ? DefaultCredentialsProvider.builder().build()
          : ProfileCredentialsProvider.create(profile);
      try (S3Client s3 = S3Client.builder()
          .region(Region.of(System.getenv().getOrDefault("AWS_REGION", "us-east-1")))
          .endpointOverride(URI.create(endpoint))
          .forcePathStyle(true)
          .credentialsProvider(provider)
          .build()) {
        String body = s3.getObjectAsBytes(
            GetObjectRequest.builder().bucket(args[1]).key(args[2]).build()).asUtf8String();
        System.out.println("{\"profile\": " + (profile == null ? "null" : quote(profile))
            + ", \"body\": " + quote(body) + "}");
      }
    }
  }

  static String quote(String s) {
    return "\"" + s.replace("\\", "\\\\").replace("\"", "\\\"").replace("\n", "\\n") + "\"";
  }
}
