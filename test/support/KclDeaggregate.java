// Deaggregates one Kinesis record with the KCL's own code, on the daemon's
// classpath, the way the daemon does before records reach a record processor.
// test/unit/kcl-classpath.test.ts runs it as a single-file program (Java 17):
//
//   java -cp 'kcl/lib/*' test/support/KclDeaggregate.java <record-file> [<startingHashKey> <endingHashKey>]
//
// It first parses the KPL message itself (Messages$AggregatedRecord, the class
// whose static initializer checks the protobuf runtime against the version it
// was generated with), then runs AggregatorUtil.deaggregate over the record
// with the given shard hash key range (default: the whole range). It prints one
// line per user record on stdout:
//
//   user <subSequenceNumber> <base64 partition key> <base64 data>
//
// and exits non-zero on any failure: a protobuf runtime older than the
// generated code fails here exactly as it fails in the daemon.
import java.math.BigInteger;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.Base64;
import java.util.List;
import software.amazon.kinesis.retrieval.AggregatorUtil;
import software.amazon.kinesis.retrieval.KinesisClientRecord;
import software.amazon.kinesis.retrieval.kpl.Messages;

public class KclDeaggregate {
    private static final int MAGIC_LENGTH = 4;
    private static final int DIGEST_LENGTH = 16;

    public static void main(String[] args) throws Exception {
        if (args.length != 1 && args.length != 3) {
            System.err.println("usage: KclDeaggregate <record-file> [<startingHashKey> <endingHashKey>]");
            System.exit(2);
        }
        byte[] bytes = Files.readAllBytes(Path.of(args[0]));
        BigInteger start = args.length == 3 ? new BigInteger(args[1]) : BigInteger.ZERO;
        BigInteger end = args.length == 3 ? new BigInteger(args[2]) : BigInteger.TWO.pow(128).subtract(BigInteger.ONE);

        if (!Arrays.equals(Arrays.copyOf(bytes, MAGIC_LENGTH), AggregatorUtil.AGGREGATED_RECORD_MAGIC)) {
            throw new IllegalArgumentException("not a KPL aggregated record: the magic bytes are missing");
        }
        byte[] message = Arrays.copyOfRange(bytes, MAGIC_LENGTH, bytes.length - DIGEST_LENGTH);
        Messages.AggregatedRecord parsed = Messages.AggregatedRecord.parseFrom(message);
        System.err.println("parsed " + parsed.getRecordsCount() + " user record(s) with protobuf "
                + com.google.protobuf.RuntimeVersion.MAJOR + "." + com.google.protobuf.RuntimeVersion.MINOR + "." + com.google.protobuf.RuntimeVersion.PATCH);

        KinesisClientRecord record = KinesisClientRecord.builder()
                .data(ByteBuffer.wrap(bytes))
                .partitionKey("aggregate")
                .sequenceNumber("1")
                .build();
        List<KinesisClientRecord> users = new AggregatorUtil().deaggregate(List.of(record), start, end);
        Base64.Encoder base64 = Base64.getEncoder();
        for (KinesisClientRecord user : users) {
            if (!user.aggregated()) throw new IllegalStateException("the KCL did not deaggregate the record");
            ByteBuffer data = user.data().duplicate();
            byte[] payload = new byte[data.remaining()];
            data.get(payload);
            System.out.println("user " + user.subSequenceNumber() + " "
                    + base64.encodeToString(user.partitionKey().getBytes(StandardCharsets.UTF_8)) + " "
                    + base64.encodeToString(payload));
        }
    }
}
