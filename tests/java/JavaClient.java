// The Apache Kafka Java client with its default settings, as a platform team's service uses it:
// the admin client creates a topic, the producer (idempotent by default since Kafka 3.0) writes
// N records with headers, and a consumer group with the cooperative-sticky assignor reads them
// back and commits. Prints one line per step; exits non-zero with the reason when a step fails.
//
// java JavaClient BOOTSTRAP TOPIC N

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.HashSet;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.CooperativeStickyAssignor;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

public final class JavaClient {
    public static void main(String[] args) throws Exception {
        String bootstrap = args[0];
        String topic = args[1];
        int n = Integer.parseInt(args[2]);

        Properties admin = new Properties();
        admin.put("bootstrap.servers", bootstrap);
        try (Admin client = Admin.create(admin)) {
            client.createTopics(List.of(new NewTopic(topic, 3, (short) 1))).all().get(60, TimeUnit.SECONDS);
            Set<String> names = client.listTopics().names().get(60, TimeUnit.SECONDS);
            if (!names.contains(topic)) {
                throw new IllegalStateException("the admin client does not list " + topic);
            }
        }
        System.out.println("admin: created " + topic);

        Properties producer = new Properties();
        producer.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        producer.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        producer.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        producer.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, "60000");
        try (KafkaProducer<String, String> client = new KafkaProducer<>(producer)) {
            for (int i = 0; i < n; i++) {
                ProducerRecord<String, String> record = new ProducerRecord<>(topic, "k" + (i % 7), "event-" + i);
                record.headers().add("ce_id", ("id-" + i).getBytes(StandardCharsets.UTF_8));
                client.send(record).get(60, TimeUnit.SECONDS);
            }
            client.flush();
        }
        System.out.println("producer: wrote " + n + " (idempotent)");

        Properties consumer = new Properties();
        consumer.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        consumer.put(ConsumerConfig.GROUP_ID_CONFIG, "java-" + topic);
        consumer.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        consumer.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        consumer.put(ConsumerConfig.PARTITION_ASSIGNMENT_STRATEGY_CONFIG, CooperativeStickyAssignor.class.getName());
        consumer.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        consumer.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        Set<String> seen = new HashSet<>();
        try (KafkaConsumer<String, String> client = new KafkaConsumer<>(consumer)) {
            client.subscribe(List.of(topic));
            long deadline = System.currentTimeMillis() + 90_000;
            while (seen.size() < n && System.currentTimeMillis() < deadline) {
                for (ConsumerRecord<String, String> record : client.poll(Duration.ofMillis(500))) {
                    if (record.headers().lastHeader("ce_id") == null) {
                        throw new IllegalStateException("a record lost its headers: " + record);
                    }
                    seen.add(record.value());
                }
            }
            client.commitSync(Duration.ofSeconds(30));
        }
        if (seen.size() != n) {
            throw new IllegalStateException("the consumer group read " + seen.size() + " of " + n);
        }
        System.out.println("consumer: read " + n + " (cooperative-sticky group, committed)");
    }
}
