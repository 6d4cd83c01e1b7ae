// Creates the platform's topics that do not exist yet, in one JVM (kafka.sh runs it with the
// source launcher: java -cp 'libs/*' EnsureTopics.java BOOTSTRAP name:partitions ...).
// Topics keep their history: retention.ms=-1 and retention.bytes=-1. Exit 0 when all exist.
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.ExecutionException;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.common.errors.TopicExistsException;

public class EnsureTopics {
    public static void main(String[] args) throws Exception {
        Properties props = new Properties();
        props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
        props.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "60000");
        try (Admin admin = Admin.create(props)) {
            Set<String> existing = admin.listTopics().names().get(); // also proves metadata works
            List<NewTopic> missing = new ArrayList<>();
            for (int i = 1; i < args.length; i++) {
                String[] spec = args[i].split(":");
                if (!existing.contains(spec[0])) {
                    missing.add(new NewTopic(spec[0], Integer.parseInt(spec[1]), (short) 1)
                        .configs(Map.of("retention.ms", "-1", "retention.bytes", "-1")));
                }
            }
            for (var entry : admin.createTopics(missing).values().entrySet()) {
                try {
                    entry.getValue().get();
                    System.err.println("created topic " + entry.getKey());
                } catch (ExecutionException e) {
                    if (!(e.getCause() instanceof TopicExistsException)) throw e;
                }
            }
        }
    }
}
