/* test-backend-libvirt.c: the libvirt backend against libvirt's test
 * driver (test:///default, and data/libvirt/node.xml), plus its pure
 * parts (domain XML, virtio-mem device XML, stats -> sample) against XML
 * and statistics captured from a real QEMU guest.
 *
 * What the libvirt 9.0 test driver does and does not do (so what can be
 * asserted here, and what only e2e can):
 *  - virConnectGetAllDomainStats returns the state group only, never
 *    balloon.*: collect() gives one sample per running domain with the
 *    balloon fields unknown; its virDomainMemoryStats answers (actual =
 *    <currentMemory>, half of it unused/usable), which collect() uses
 *    when MEMTIDE_LIBVIRT_PER_DOMAIN_STATS=1;
 *  - setmem works and is visible to other connections of test:///default
 *    (one shared driver per process); a test:///<file> open is private;
 *  - virDomainUpdateDeviceFlags is not supported;
 *  - the live XML drops virtio-mem <current> and non-user aliases;
 *  - lifecycle and metadata events are delivered, through the GLib main
 *    loop, to every connection of test:///default.
 */
#include <gio/gio.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include "backend-libvirt.h"
#include "config.h"

#define DEFAULT_URI     "test:///default"
#define TEST_UUID       "6695eb01-f6a4-8304-79aa-97f2502e193f" /* test:///default's domain */
#define PLAIN_UUID      "11111111-1111-4111-8111-111111111111"
#define VMEM_UUID       "22222222-2222-4222-8222-222222222222"
#define OFF_UUID        "33333333-3333-4333-8333-333333333333"
#define EVENT_TIMEOUT_S 5

G_DEFINE_AUTOPTR_CLEANUP_FUNC (virDomain, virDomainFree)

static void
connection_close (virConnect *conn)
{
  virConnectClose (conn);
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC (virConnect, connection_close)

static char *
read_data (const char *name)
{
  g_autofree char *path = g_test_build_filename (G_TEST_DIST, "data", "libvirt", name, NULL);
  g_autoptr (GError) error = NULL;
  char *contents = NULL;

  g_file_get_contents (path, &contents, NULL, &error);
  g_assert_no_error (error);
  return contents;
}

/* The domain's own settings, as the policy they give on top of no
 * files; min MT_UNKNOWN: not set. */
static void
assert_overrides (const MtDomainInfo *info, guint n_settings, guint64 min, guint64 max)
{
  g_autoptr (MtConfig) config = mt_config_load (NULL, NULL, NULL);
  g_autoptr (GError) error = NULL;
  MtVmPolicy p;

  g_assert_null (info->overrides_error);
  g_assert_cmpuint (mt_vm_overrides_get_n_settings (info->overrides), ==, n_settings);
  g_assert_true (mt_config_resolve_vm (config, info->name, info->overrides, &p, &error));
  g_assert_no_error (error);
  g_assert_false (p.max.is_percent);
  g_assert_cmpuint (p.max.bytes, ==, max);
  if (min != MT_UNKNOWN) {
    g_assert_false (p.min.is_percent);
    g_assert_cmpuint (p.min.bytes, ==, min);
  }
}

static char *
node_uri (void)
{
  g_autofree char *path = g_test_build_filename (G_TEST_DIST, "data", "libvirt", "node.xml", NULL);
  g_autofree char *abs = g_canonicalize_filename (path, NULL);

  return g_strconcat ("test://", abs, NULL);
}

/* Events as "ADDED <uuid>", in order. */
typedef struct {
  GPtrArray *events;
} Recorder;

static void
record_event (MtBackend *b, MtDomainEvent event, const char *uuid, gpointer user_data)
{
  Recorder *rec = user_data;
  static const char *const names[] = {
    [MT_DOMAIN_EVENT_ADDED] = "ADDED",
    [MT_DOMAIN_EVENT_REMOVED] = "REMOVED",
    [MT_DOMAIN_EVENT_CHANGED] = "CHANGED",
  };

  g_ptr_array_add (rec->events, g_strdup_printf ("%s %s", names[event], uuid));
}

static void
recorder_init (Recorder *rec, MtBackend *b)
{
  rec->events = g_ptr_array_new_with_free_func (g_free);
  b->domain_cb = record_event;
  b->user_data = rec;
}

static void
recorder_clear (Recorder *rec)
{
  g_clear_pointer (&rec->events, g_ptr_array_unref);
}
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (Recorder, recorder_clear)

static gboolean
recorder_has (Recorder *rec, const char *event)
{
  return g_ptr_array_find_with_equal_func (rec->events, event, g_str_equal, NULL);
}

static gboolean
on_timeout (gpointer data)
{
  gboolean *expired = data;

  *expired = TRUE;
  return G_SOURCE_REMOVE;
}

/* Run the default main context until @event was recorded. */
static void
wait_for_event (Recorder *rec, const char *event)
{
  gboolean expired = FALSE;
  guint id = g_timeout_add_seconds (EVENT_TIMEOUT_S, on_timeout, &expired);

  while (!recorder_has (rec, event) && !expired)
    g_main_context_iteration (NULL, TRUE);
  if (!expired)
    g_source_remove (id);
  if (!recorder_has (rec, event))
    g_error ("no '%s' within %d s", event, EVENT_TIMEOUT_S);
}

static MtBackend *
connect_backend (const char *uri, Recorder *rec)
{
  MtBackend *b = mt_backend_libvirt_new (uri);
  g_autoptr (GError) error = NULL;

  if (rec != NULL)
    recorder_init (rec, b);
  g_assert_true (b->ops->connect (b, &error));
  g_assert_no_error (error);
  return b;
}

/* ---- pure: domain XML ---- */

static void
test_parse_live_vmem (void)
{
  g_autofree char *xml = read_data ("vmem-live.xml");
  g_autoptr (GError) error = NULL;
  g_autoptr (MtDomainInfo) info = mt_libvirt_parse_domain_xml (xml, &error);

  g_assert_no_error (error);
  g_assert_cmpstr (info->name, ==, "mtlv-probe-1");
  g_assert_cmpstr (info->uuid, ==, "72fd3e1a-b3aa-42fb-a8dd-0071bdf00e5f");
  /* <memory> 1536 MiB - virtio-mem <size> 1024 MiB */
  g_assert_cmpuint (info->base_memory, ==, 512 * MT_MIB);
  g_assert_cmpuint (info->vmem_size, ==, 1024 * MT_MIB);
  g_assert_cmpuint (info->vmem_block, ==, 2 * MT_MIB);
  g_assert_cmpuint (info->vmem_requested, ==, 256 * MT_MIB);
  g_assert_cmpuint (info->vmem_plugged, ==, 256 * MT_MIB);
  g_assert_cmpstr (info->vmem_alias, ==, "virtiomem0");
  g_assert_cmpstr (
    info->agent_socket, ==,
    "/var/lib/libvirt/qemu/channel/target/domain-1-mtlv-probe-1/org.memtide.agent.0");
  g_assert_null (info->overrides);
}

static void
test_parse_plain (void)
{
  const char *xml =
    "<domain type='kvm'><name>p</name><uuid>u-1</uuid>"
    "<memory unit='GiB'>1</memory><currentMemory unit='MiB'>700</currentMemory>"
    "<devices>"
    /* the QEMU guest agent's channel and a pty channel with our name: not ours */
    "<channel type='unix'><source mode='bind' path='/run/qga.sock'/>"
    "<target type='virtio' name='org.qemu.guest_agent.0'/></channel>"
    "<channel type='pty'><target type='virtio' name='org.memtide.agent.0'/></channel>"
    "</devices></domain>";
  g_autoptr (GError) error = NULL;
  g_autoptr (MtDomainInfo) info = mt_libvirt_parse_domain_xml (xml, &error);

  g_assert_no_error (error);
  g_assert_cmpstr (info->name, ==, "p");
  g_assert_cmpuint (info->base_memory, ==, MT_GIB);
  g_assert_cmpuint (info->vmem_size, ==, 0);
  g_assert_cmpuint (info->vmem_block, ==, 0);
  g_assert_cmpuint (info->vmem_requested, ==, 0);
  g_assert_cmpuint (info->vmem_plugged, ==, 0);
  g_assert_null (info->vmem_alias);
  g_assert_null (info->agent_socket);
}

static void
test_parse_units (void)
{
  static const struct {
    const char *memory;
    guint64 bytes;
  } cases[] = {
    { "<memory>1024</memory>", MT_MIB }, /* KiB by default */
    { "<memory unit='b'>4096</memory>", 4096 },
    { "<memory unit='bytes'>4096</memory>", 4096 },
    { "<memory unit='KB'>1000</memory>", 1000 * 1000 },
    { "<memory unit='k'>3</memory>", 3 * MT_KIB },
    { "<memory unit='M'>5</memory>", 5 * MT_MIB },
    { "<memory unit='MiB'>5</memory>", 5 * MT_MIB },
    { "<memory unit='gib'>2</memory>", 2 * MT_GIB },
    { "<memory unit='GB'>2</memory>", 2000000000 },
    { "<memory unit='T'>1</memory>", 1024 * MT_GIB },
    { "<memory unit='KiB'> 2048 </memory>", 2 * MT_MIB },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++) {
    g_autofree char *xml =
      g_strdup_printf ("<domain><name>u</name><uuid>u-2</uuid>%s</domain>", cases[i].memory);
    g_autoptr (GError) error = NULL;
    g_autoptr (MtDomainInfo) info = mt_libvirt_parse_domain_xml (xml, &error);

    g_assert_no_error (error);
    g_assert_cmpuint (info->base_memory, ==, cases[i].bytes);
  }
}

static void
test_parse_errors (void)
{
  static const struct {
    const char *xml;
    const char *message;
  } cases[] = {
    { "<domain><name>x</name>", "malformed domain XML: " },
    { "<node/>", "domain XML has no <domain> root element" },
    { "<domain><name>x</name><memory>1</memory></domain>", "domain XML without <name> or <uuid>" },
    { "<domain><name>x</name><uuid>u</uuid></domain>", "domain XML of 'x' has no <memory>" },
    { "<domain><name>x</name><uuid>u</uuid><memory>-1</memory></domain>",
      "domain XML: <memory> is not a size: '-1'" },
    { "<domain><name>x</name><uuid>u</uuid><memory unit='kg'>1</memory></domain>",
      "domain XML: <memory> has an unknown unit 'kg'" },
    { "<domain><name>x</name><uuid>u</uuid><memory unit='EiB'>16</memory></domain>",
      "domain XML: <memory> is too large: 16 EiB" },
    { "<domain><name>x</name><uuid>u</uuid><memory unit='MiB'>512</memory><devices>"
      "<memory model='virtio-mem'><target><size unit='MiB'>1024</size></target></memory>"
      "</devices></domain>",
      "domain XML: virtio-mem device without a block size" },
    { "<domain><name>x</name><uuid>u</uuid><memory unit='MiB'>512</memory><devices>"
      "<memory model='virtio-mem'><target><size unit='MiB'>1024</size>"
      "<block unit='MiB'>2</block></target></memory></devices></domain>",
      "domain XML of 'x': memory devices (1073741824 bytes) exceed <memory> (536870912 bytes)" },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++) {
    g_autoptr (GError) error = NULL;
    g_autoptr (MtDomainInfo) info = mt_libvirt_parse_domain_xml (cases[i].xml, &error);

    g_assert_null (info);
    g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA);
    g_assert_true (g_str_has_prefix (error->message, cases[i].message));
  }
}

/* ---- pure: virtio-mem device XML ---- */

static void
test_vmem_update_xml (void)
{
  g_autofree char *xml = read_data ("vmem-live.xml");
  g_autoptr (GError) error = NULL;
  g_autofree char *dev = mt_libvirt_vmem_update_xml (xml, 512 * MT_MIB, &error);

  g_assert_no_error (error);
  /* The device as libvirt 9.0 wants it: whole, with alias and address. */
  g_assert_cmpstr (
    dev, ==,
    "<memory model=\"virtio-mem\">"
    "<target>"
    "<size unit=\"KiB\">1048576</size>"
    "<node>0</node>"
    "<block unit=\"KiB\">2048</block>"
    "<requested unit=\"KiB\">524288</requested>"
    "<current unit=\"KiB\">262144</current>"
    "</target>"
    "<alias name=\"virtiomem0\"/>"
    "<address type=\"pci\" domain=\"0x0000\" bus=\"0x00\" slot=\"0x04\" function=\"0x0\"/>"
    "</memory>");
}

static void
test_vmem_update_xml_refusals (void)
{
  g_autofree char *xml = read_data ("vmem-live.xml");
  const char *plain = "<domain><name>p</name><uuid>u</uuid><memory>1024</memory></domain>";
  static const struct {
    guint64 requested;
    const char *message;
  } cases[] = {
    { 3 * MT_MIB, "not a multiple of the virtio-mem block size (2 MiB)" },
    { 2 * MT_MIB + 512, "not a multiple of the virtio-mem block size (2 MiB)" },
    { 1026 * MT_MIB, "above the virtio-mem device size (1024 MiB)" },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++) {
    g_autoptr (GError) error = NULL;
    g_autofree char *dev = mt_libvirt_vmem_update_xml (xml, cases[i].requested, &error);

    g_assert_null (dev);
    g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT);
    g_assert_cmpstr (error->message, ==, cases[i].message);
  }

  {
    g_autoptr (GError) error = NULL;
    g_autofree char *dev = mt_libvirt_vmem_update_xml (plain, 0, &error);

    g_assert_null (dev);
    g_assert_error (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED);
    g_assert_cmpstr (error->message, ==, "the domain has no virtio-mem device");
  }
}

/* ---- pure: statistics -> sample ---- */

typedef struct {
  virTypedParameterPtr params;
  int n;
} Params;

static void
params_clear (Params *p)
{
  virTypedParamsFree (p->params, p->n);
}
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (Params, params_clear)

/* balloon.* of `virsh domstats --balloon` on the guest of vmem-live.xml:
 * balloon at 400 MiB, 256 MiB virtio-mem plugged. */
static void
params_from_real_guest (Params *p)
{
  static const struct {
    const char *name;
    unsigned long long value;
  } stats[] = {
    { "balloon.current", 671744 },   { "balloon.maximum", 1572864 },
    { "balloon.swap_in", 12 },       { "balloon.swap_out", 34 },
    { "balloon.major_fault", 5 },    { "balloon.minor_fault", 1276 },
    { "balloon.unused", 596376 },    { "balloon.available", 628884 },
    { "balloon.usable", 593800 },    { "balloon.last-update", 1795314450 },
    { "balloon.disk_caches", 2416 }, { "balloon.rss", 204768 },
  };
  int max = 0;

  *p = (Params){ 0 };
  for (gsize i = 0; i < G_N_ELEMENTS (stats); i++)
    g_assert_cmpint (
      virTypedParamsAddULLong (&p->params, &p->n, &max, stats[i].name, stats[i].value), ==, 0);
}

static MtDomainInfo *
info_vmem (guint64 plugged)
{
  MtDomainInfo *info = g_new0 (MtDomainInfo, 1);

  info->name = g_strdup ("mtlv-probe-1");
  info->uuid = g_strdup ("72fd3e1a-b3aa-42fb-a8dd-0071bdf00e5f");
  info->base_memory = 512 * MT_MIB;
  info->vmem_size = 1024 * MT_MIB;
  info->vmem_block = 2 * MT_MIB;
  info->vmem_requested = 256 * MT_MIB;
  info->vmem_plugged = plugged;
  return info;
}

static void
test_sample_from_stats (void)
{
  g_auto (Params) p;
  g_autoptr (MtDomainInfo) info = info_vmem (256 * MT_MIB);
  MtVmSample s;

  params_from_real_guest (&p);
  mt_vm_sample_init (&s, 42);
  mt_libvirt_sample_from_stats (&s, p.params, p.n, info);

  g_assert_cmpint (s.time, ==, 42);
  /* balloon.current 656 MiB = balloon 400 MiB + 256 MiB plugged */
  g_assert_cmpuint (s.balloon_actual, ==, 400 * MT_MIB);
  g_assert_cmpuint (s.vmem_plugged, ==, 256 * MT_MIB);
  g_assert_cmpuint (s.vmem_requested, ==, 256 * MT_MIB);
  g_assert_cmpuint (s.rss, ==, 204768 * MT_KIB);
  g_assert_cmpuint (s.guest_total, ==, 628884 * MT_KIB);
  g_assert_cmpuint (s.guest_available, ==, 593800 * MT_KIB);
  g_assert_cmpuint (s.guest_free, ==, 596376 * MT_KIB);
  g_assert_cmpuint (s.guest_cache, ==, 2416 * MT_KIB);
  g_assert_cmpuint (s.swap_in, ==, 12 * MT_KIB);
  g_assert_cmpuint (s.swap_out, ==, 34 * MT_KIB);
  g_assert_cmpuint (s.major_faults, ==, 5);
  g_assert_cmpuint (s.oom_kills, ==, MT_UNKNOWN);
  g_assert_false (s.from_agent);
}

static void
test_sample_from_stats_partial (void)
{
  g_auto (Params) p;
  g_autoptr (MtDomainInfo) stale = info_vmem (0);
  g_autoptr (MtDomainInfo) no_vmem = info_vmem (0);
  MtVmSample s;

  params_from_real_guest (&p);

  /* Domain not announced yet: nothing to subtract, so no balloon size. */
  mt_vm_sample_init (&s, 1);
  mt_libvirt_sample_from_stats (&s, p.params, p.n, NULL);
  g_assert_cmpuint (s.balloon_actual, ==, MT_UNKNOWN);
  g_assert_cmpuint (s.vmem_plugged, ==, MT_UNKNOWN);
  g_assert_cmpuint (s.guest_total, ==, 628884 * MT_KIB);

  /* The plug event has not arrived: 656 MiB is above the 512 MiB boot
   * memory, so the balloon size is unknown this tick, not wrong. */
  mt_vm_sample_init (&s, 1);
  mt_libvirt_sample_from_stats (&s, p.params, p.n, stale);
  g_assert_cmpuint (s.balloon_actual, ==, MT_UNKNOWN);
  g_assert_cmpuint (s.vmem_plugged, ==, 0);

  /* No virtio-mem device: balloon.current is the balloon. */
  no_vmem->vmem_size = no_vmem->vmem_block = no_vmem->vmem_requested = 0;
  no_vmem->base_memory = MT_GIB;
  mt_vm_sample_init (&s, 1);
  mt_libvirt_sample_from_stats (&s, p.params, p.n, no_vmem);
  g_assert_cmpuint (s.balloon_actual, ==, 671744 * MT_KIB);

  /* virtio-mem <current> not reported (older libvirt). */
  no_vmem->vmem_plugged = MT_UNKNOWN;
  mt_vm_sample_init (&s, 1);
  mt_libvirt_sample_from_stats (&s, p.params, p.n, no_vmem);
  g_assert_cmpuint (s.balloon_actual, ==, MT_UNKNOWN);

  /* No balloon group at all (the test driver). */
  mt_vm_sample_init (&s, 1);
  mt_libvirt_sample_from_stats (&s, NULL, 0, no_vmem);
  g_assert_cmpuint (s.balloon_actual, ==, MT_UNKNOWN);
  g_assert_cmpuint (s.guest_total, ==, MT_UNKNOWN);
  g_assert_cmpuint (s.rss, ==, MT_UNKNOWN);
  g_assert_cmpuint (s.major_faults, ==, MT_UNKNOWN);
}

static void
test_format_size (void)
{
  g_autofree char *a = mt_libvirt_format_size (600 * MT_MIB);
  g_autofree char *b = mt_libvirt_format_size (600 * MT_MIB + MT_KIB);
  g_autofree char *c = mt_libvirt_format_size (1000);
  g_autofree char *d = mt_libvirt_format_size (0);

  g_assert_cmpstr (a, ==, "600 MiB");
  g_assert_cmpstr (b, ==, "614401 KiB");
  g_assert_cmpstr (c, ==, "1000 bytes");
  g_assert_cmpstr (d, ==, "0 MiB");
}

/* ---- against the test driver ---- */

/* collect() callback: keep a copy of each sample, by UUID. */
static void
collect_into (const char *uuid, MtVmSample *sample, gpointer user_data)
{
  GHashTable *samples = user_data;

  g_assert_nonnull (samples);
  g_assert_false (g_hash_table_contains (samples, uuid));
  g_hash_table_insert (samples, g_strdup (uuid), g_memdup2 (sample, sizeof *sample));
}

static void
test_bad_uri (void)
{
  /* A transport libvirt does not know fails in the client library, the
   * same whether or not a libvirtd runs on this machine (a plain
   * "bogus:///" is handed to libvirtd when one runs, and fails with
   * "connection refused" when none does). */
  g_autoptr (MtBackend) b = mt_backend_libvirt_new ("test+bogus:///default");
  g_autoptr (MtBackend) nosock =
    mt_backend_libvirt_new ("test+unix:///default?socket=/nonexistent/memtide.sock");
  g_autoptr (GError) error = NULL;
  g_autoptr (GError) probe_error = NULL;
  g_autoptr (GError) later_error = NULL;
  g_autoptr (GError) collect_error = NULL;

  g_assert_false (b->ops->connect (b, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT);
  g_assert_cmpstr (
    error->message, ==,
    "cannot connect to libvirt at test+bogus:///default: invalid argument: remote_open: "
    "transport in URL not recognised (should be tls|unix|ssh|ext|tcp|libssh2|libssh)");

  g_assert_cmpint (b->ops->probe (b, &probe_error), ==, MT_PROBE_NO);
  g_assert_nonnull (probe_error);

  /* A daemon that is not (yet) there is worth another try. */
  g_assert_cmpint (nosock->ops->probe (nosock, &later_error), ==, MT_PROBE_LATER);
  g_assert_true (g_str_has_prefix (
    later_error->message,
    "cannot connect to libvirt at test+unix:///default?socket=/nonexistent/memtide.sock: "
    "Failed to connect socket to '/nonexistent/memtide.sock'"));

  g_assert_false (b->ops->collect (b, 0, collect_into, NULL, &collect_error));
  g_assert_error (collect_error, G_IO_ERROR, G_IO_ERROR_NOT_CONNECTED);
  g_assert_cmpstr (collect_error->message, ==, "not connected to libvirt at test+bogus:///default");
}

static MtDomainInfo *
find_info (GPtrArray *infos, const char *uuid)
{
  for (guint i = 0; i < infos->len; i++) {
    MtDomainInfo *info = g_ptr_array_index (infos, i);
    if (g_str_equal (info->uuid, uuid))
      return info;
  }
  return NULL;
}

static MtDomainInfo *
get_info (GPtrArray *infos, const char *uuid)
{
  MtDomainInfo *info = find_info (infos, uuid);

  if (info == NULL)
    g_error ("domain %s not listed", uuid);
  return info;
}

static void
assert_node_vmem (const MtDomainInfo *info)
{
  g_assert_cmpstr (info->name, ==, "vmem");
  g_assert_cmpuint (info->base_memory, ==, 512 * MT_MIB);
  g_assert_cmpuint (info->vmem_size, ==, 1024 * MT_MIB);
  g_assert_cmpuint (info->vmem_block, ==, 2 * MT_MIB);
  g_assert_cmpuint (info->vmem_requested, ==, 256 * MT_MIB);
  /* the test driver reports <current> as 0 and drops the alias */
  g_assert_cmpuint (info->vmem_plugged, ==, 0);
  g_assert_null (info->vmem_alias);
  g_assert_cmpstr (info->agent_socket, ==, "/run/memtide-test/vmem.agent");
  /* the driver parsed its <metadata> (which virDomainGetMetadata hands
   * back without its namespace) into policy settings */
  assert_overrides (info, 2, 256 * MT_MIB, 1536 * MT_MIB);
}

static void
test_node_list (void)
{
  g_autofree char *uri = node_uri ();
  g_auto (Recorder) rec = { 0 };
  g_autoptr (MtBackend) b = connect_backend (uri, &rec);
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) infos = NULL;
  MtDomainInfo *plain;

  /* connect() announced the running domains, not 'off'. */
  g_assert_cmpuint (rec.events->len, ==, 2);
  g_assert_true (recorder_has (&rec, "ADDED " PLAIN_UUID));
  g_assert_true (recorder_has (&rec, "ADDED " VMEM_UUID));

  infos = g_ptr_array_new_with_free_func ((GDestroyNotify) mt_domain_info_free);
  for (const char *const *u = (const char *const[]){ PLAIN_UUID, VMEM_UUID, NULL }; *u; u++) {
    g_ptr_array_add (infos, b->ops->get_domain (b, *u, &error));
    g_assert_no_error (error);
  }
  /* 'off' is defined, not running: not announced, and not read. */
  g_assert_false (recorder_has (&rec, "ADDED " OFF_UUID));
  g_assert_null (b->ops->get_domain (b, OFF_UUID, &error));
  g_assert_nonnull (error);

  plain = get_info (infos, PLAIN_UUID);
  g_assert_cmpstr (plain->name, ==, "plain");
  g_assert_cmpuint (plain->base_memory, ==, MT_GIB);
  g_assert_cmpuint (plain->vmem_size, ==, 0);
  g_assert_null (plain->agent_socket);
  g_assert_null (plain->overrides);
  g_assert_null (plain->overrides_error);

  assert_node_vmem (get_info (infos, VMEM_UUID));
}

static void
test_node_get_domain (void)
{
  g_autofree char *uri = node_uri ();
  g_autoptr (MtBackend) b = connect_backend (uri, NULL);
  g_autoptr (GError) error = NULL;
  g_autoptr (MtDomainInfo) vmem = b->ops->get_domain (b, VMEM_UUID, &error);
  g_autoptr (MtDomainInfo) none = NULL;

  g_assert_no_error (error);
  assert_node_vmem (vmem);

  none = b->ops->get_domain (b, "44444444-4444-4444-8444-444444444444", &error);
  g_assert_null (none);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND);
  g_assert_true (g_str_has_prefix (error->message,
                                   "cannot find domain 44444444-4444-4444-8444-444444444444: "
                                   "Domain not found"));
}

/* One collect() on the test node, with or without per-domain stats:
 * the table of samples by UUID (both domains must be in it). */
static GHashTable *
collect_node (gboolean per_domain, MtVmSample **plain, MtVmSample **vmem)
{
  g_autofree char *uri = node_uri ();
  g_autoptr (MtBackend) b = NULL;
  g_autoptr (GError) error = NULL;
  GHashTable *samples = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);

  if (per_domain)
    g_setenv (MT_LIBVIRT_PER_DOMAIN_STATS_ENV, "1", TRUE);
  b = connect_backend (uri, NULL);
  g_unsetenv (MT_LIBVIRT_PER_DOMAIN_STATS_ENV);
  g_assert_true (b->ops->collect (b, 1234, collect_into, samples, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (g_hash_table_size (samples), ==, 2);
  *plain = g_hash_table_lookup (samples, PLAIN_UUID);
  *vmem = g_hash_table_lookup (samples, VMEM_UUID);
  g_assert_nonnull (*plain);
  g_assert_nonnull (*vmem);
  return samples;
}

static void
test_node_collect (void)
{
  MtVmSample *plain, *vmem;
  g_autoptr (GHashTable) samples = collect_node (FALSE, &plain, &vmem);

  g_assert_cmpint (plain->time, ==, 1234);
  g_assert_cmpuint (plain->vmem_plugged, ==, 0);
  g_assert_cmpuint (plain->vmem_requested, ==, 0);
  g_assert_cmpuint (vmem->vmem_plugged, ==, 0);
  g_assert_cmpuint (vmem->vmem_requested, ==, 256 * MT_MIB);
  /* the test driver has no balloon statistics group */
  g_assert_cmpuint (plain->balloon_actual, ==, MT_UNKNOWN);
  g_assert_cmpuint (vmem->guest_total, ==, MT_UNKNOWN);
  g_assert_cmpuint (vmem->rss, ==, MT_UNKNOWN);
}

/* MEMTIDE_LIBVIRT_PER_DOMAIN_STATS=1: what the batched call lacks is
 * read per domain (the test driver's virDomainMemoryStats: actual is
 * <currentMemory>, half of it unused). */
static void
test_node_collect_per_domain (void)
{
  MtVmSample *plain, *vmem;
  g_autoptr (GHashTable) samples = collect_node (TRUE, &plain, &vmem);

  g_assert_cmpint (plain->time, ==, 1234);
  g_assert_cmpuint (plain->balloon_actual, ==, 768 * MT_MIB);
  g_assert_cmpuint (plain->guest_total, ==, 768 * MT_MIB);
  g_assert_cmpuint (plain->guest_available, ==, 384 * MT_MIB);
  g_assert_cmpuint (plain->guest_free, ==, 384 * MT_MIB);
  g_assert_cmpuint (plain->guest_cache, ==, 96 * MT_MIB);
  g_assert_cmpuint (plain->swap_in, ==, 0);
  g_assert_cmpuint (plain->major_faults, ==, 0);
  g_assert_cmpuint (plain->rss, ==, 384 * MT_MIB);
  /* The virtio-mem sizes still come from the cached domain XML. */
  g_assert_cmpuint (vmem->vmem_requested, ==, 256 * MT_MIB);
  g_assert_cmpuint (vmem->guest_total, ==, 768 * MT_MIB);
}

static void
test_node_set_balloon_refusals (void)
{
  g_autofree char *uri = node_uri ();
  g_autoptr (MtBackend) b = connect_backend (uri, NULL);
  g_autoptr (GError) above_error = NULL;
  g_autoptr (GError) off_error = NULL;
  g_autoptr (GError) missing_error = NULL;
  g_autoptr (GError) error = NULL;

  g_assert_false (b->ops->set_balloon (b, VMEM_UUID, 600 * MT_MIB, NULL, &above_error));
  g_assert_error (above_error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT);
  g_assert_cmpstr (above_error->message, ==,
                   "refusing to set balloon of domain 'vmem' to 600 MiB: above its boot memory "
                   "of 512 MiB (virtio-mem memory cannot be ballooned)");

  g_assert_true (b->ops->set_balloon (b, VMEM_UUID, 512 * MT_MIB, NULL, &error));
  g_assert_no_error (error);
  g_assert_true (b->ops->set_balloon (b, PLAIN_UUID, MT_GIB, NULL, &error));
  g_assert_no_error (error);

  /* libvirt's own refusal, passed on */
  g_assert_false (b->ops->set_balloon (b, OFF_UUID, 256 * MT_MIB, NULL, &off_error));
  g_assert_error (off_error, G_IO_ERROR, G_IO_ERROR_FAILED);
  g_assert_cmpstr (off_error->message, ==,
                   "libvirt refused to set balloon of domain 'off' to 256 MiB: "
                   "Requested operation is not valid: domain is not running");

  g_assert_false (
    b->ops->set_balloon (b, "44444444-4444-4444-8444-444444444444", MT_MIB, NULL, &missing_error));
  g_assert_error (missing_error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND);
}

typedef struct {
  MtBackend *b;
  const char *uuid;
  guint64 bytes;
  guint n_ok;
  GError *error;
} ResizeLoop;

static gpointer
resize_loop (gpointer data)
{
  ResizeLoop *loop = data;

  for (guint i = 0; i < 200 && loop->error == NULL; i++)
    if (loop->b->ops->set_balloon (loop->b, loop->uuid, loop->bytes - (i % 2) * MT_MIB, NULL,
                                   &loop->error))
      loop->n_ok++;
  return NULL;
}

/* The resize calls run in the daemon's worker threads (backend.h), while
 * the main thread collects, reads domains and changes the cache: both at
 * once, for a while, with every call answered.  Under valgrind/ASan a
 * race on the cache or the connection shows here. */
static void
test_node_set_balloon_in_threads (void)
{
  g_autofree char *uri = node_uri ();
  g_autoptr (MtBackend) b = connect_backend (uri, NULL);
  ResizeLoop loops[] = {
    { .b = b, .uuid = PLAIN_UUID, .bytes = 768 * MT_MIB },
    { .b = b, .uuid = VMEM_UUID, .bytes = 384 * MT_MIB },
  };
  GThread *threads[G_N_ELEMENTS (loops)];
  guint rounds = 0;

  for (guint i = 0; i < G_N_ELEMENTS (loops); i++)
    threads[i] = g_thread_new ("resize", resize_loop, &loops[i]);
  for (;;) {
    g_autoptr (GHashTable) samples =
      g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
    g_autoptr (GError) error = NULL;
    g_autoptr (MtDomainInfo) info = NULL;
    gboolean running = FALSE;

    g_assert_true (b->ops->collect (b, rounds + 1, collect_into, samples, &error));
    g_assert_no_error (error);
    g_assert_cmpuint (g_hash_table_size (samples), ==, 2);
    /* get_domain() puts the cache entry anew. */
    info = b->ops->get_domain (b, rounds % 2 ? PLAIN_UUID : VMEM_UUID, &error);
    g_assert_no_error (error);
    rounds++;
    for (guint i = 0; i < G_N_ELEMENTS (loops); i++)
      running |= loops[i].n_ok + (loops[i].error != NULL) < 200;
    if (!running)
      break;
    g_main_context_iteration (NULL, FALSE);
  }
  for (guint i = 0; i < G_N_ELEMENTS (loops); i++) {
    g_thread_join (threads[i]);
    g_assert_no_error (loops[i].error);
    g_assert_cmpuint (loops[i].n_ok, ==, 200);
  }
  g_test_message ("%u collect rounds during 400 resize calls", rounds);
}

static void
test_node_set_vmem (void)
{
  g_autofree char *uri = node_uri ();
  g_autoptr (MtBackend) b = connect_backend (uri, NULL);
  static const struct {
    const char *uuid;
    guint64 requested;
    int code;
    const char *message;
  } cases[] = {
    { VMEM_UUID, 3 * MT_MIB, G_IO_ERROR_INVALID_ARGUMENT,
      "refusing to set virtio-mem of domain 'vmem' to 3 MiB: "
      "not a multiple of the virtio-mem block size (2 MiB)" },
    { VMEM_UUID, 2 * MT_GIB, G_IO_ERROR_INVALID_ARGUMENT,
      "refusing to set virtio-mem of domain 'vmem' to 2048 MiB: "
      "above the virtio-mem device size (1024 MiB)" },
    { PLAIN_UUID, 256 * MT_MIB, G_IO_ERROR_NOT_SUPPORTED,
      "refusing to set virtio-mem of domain 'plain' to 256 MiB: "
      "the domain has no virtio-mem device" },
    /* a valid request reaches libvirt, whose test driver cannot do it */
    { VMEM_UUID, 512 * MT_MIB, G_IO_ERROR_NOT_SUPPORTED,
      "libvirt refused to set virtio-mem of domain 'vmem' to 512 MiB: "
      "this function is not supported by the connection driver: virDomainUpdateDeviceFlags" },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++) {
    g_autoptr (GError) error = NULL;

    g_assert_false (b->ops->set_vmem (b, cases[i].uuid, cases[i].requested, NULL, &error));
    g_assert_error (error, G_IO_ERROR, cases[i].code);
    g_assert_cmpstr (error->message, ==, cases[i].message);
  }
}

/* test:///default is one driver per process: a second connection sees
 * what the backend did, and makes events the backend receives. */
static void
test_default_set_balloon (void)
{
  g_autoptr (MtBackend) b = connect_backend (DEFAULT_URI, NULL);
  g_autoptr (virConnect) conn = virConnectOpen (DEFAULT_URI);
  g_autoptr (virDomain) dom = virDomainLookupByUUIDString (conn, TEST_UUID);
  g_autoptr (GError) error = NULL;
  g_autoptr (GError) above_error = NULL;
  virDomainInfo info;

  /* bytes -> KiB, rounded down */
  g_assert_true (b->ops->set_balloon (b, TEST_UUID, MT_GIB + 1023, NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpint (virDomainGetInfo (dom, &info), ==, 0);
  g_assert_cmpuint (info.memory, ==, 1048576);

  g_assert_true (b->ops->set_balloon (b, TEST_UUID, 3 * MT_GIB, NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpint (virDomainGetInfo (dom, &info), ==, 0);
  g_assert_cmpuint (info.memory, ==, 3 * 1048576);

  g_assert_false (b->ops->set_balloon (b, TEST_UUID, 9 * MT_GIB, NULL, &above_error));
  g_assert_error (above_error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT);
  g_assert_cmpstr (above_error->message, ==,
                   "refusing to set balloon of domain 'test' to 9216 MiB: above its boot memory "
                   "of 8192 MiB");
  g_assert_cmpint (virDomainGetInfo (dom, &info), ==, 0);
  g_assert_cmpuint (info.memory, ==, 3 * 1048576);
}

static void
test_default_events (void)
{
  g_auto (Recorder) rec = { 0 };
  g_autoptr (MtBackend) b = connect_backend (DEFAULT_URI, &rec);
  g_autoptr (virConnect) conn = virConnectOpen (DEFAULT_URI);
  g_autoptr (virDomain) dom = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (MtDomainInfo) info = NULL;
  g_autoptr (MtDomainInfo) changed = NULL;
  const char *xml =
    "<domain type='test'><name>memtide-events</name>"
    "<uuid>55555555-5555-4555-8555-555555555555</uuid>"
    "<memory unit='MiB'>256</memory><vcpu>1</vcpu><os><type>hvm</type></os></domain>";

  g_assert_true (recorder_has (&rec, "ADDED " TEST_UUID));
  g_ptr_array_set_size (rec.events, 0);

  dom = virDomainCreateXML (conn, xml, 0);
  g_assert_nonnull (dom);
  wait_for_event (&rec, "ADDED 55555555-5555-4555-8555-555555555555");
  info = b->ops->get_domain (b, "55555555-5555-4555-8555-555555555555", &error);
  g_assert_no_error (error);
  g_assert_cmpuint (info->base_memory, ==, 256 * MT_MIB);

  /* Only our namespace counts as a policy change. */
  g_assert_cmpint (virDomainSetMetadata (dom, VIR_DOMAIN_METADATA_ELEMENT, "<other/>", "o",
                                         "https://example.org/other", VIR_DOMAIN_AFFECT_LIVE),
                   ==, 0);
  g_assert_cmpint (virDomainSetMetadata (dom, VIR_DOMAIN_METADATA_ELEMENT,
                                         "<policy><max>1G</max></policy>", "mt",
                                         MT_METADATA_NAMESPACE, VIR_DOMAIN_AFFECT_LIVE),
                   ==, 0);
  wait_for_event (&rec, "CHANGED 55555555-5555-4555-8555-555555555555");
  g_assert_cmpuint (rec.events->len, ==, 2);

  changed = b->ops->get_domain (b, "55555555-5555-4555-8555-555555555555", &error);
  g_assert_no_error (error);
  assert_overrides (changed, 1, MT_UNKNOWN, MT_GIB);

  /* Bad metadata does not fail the read: the driver says why it is
   * ignored, and the daemon applies the file policy. */
  g_assert_cmpint (virDomainSetMetadata (dom, VIR_DOMAIN_METADATA_ELEMENT,
                                         "<policy><mni>1G</mni></policy>", "mt",
                                         MT_METADATA_NAMESPACE, VIR_DOMAIN_AFFECT_LIVE),
                   ==, 0);
  g_ptr_array_set_size (rec.events, 0);
  wait_for_event (&rec, "CHANGED 55555555-5555-4555-8555-555555555555");
  g_clear_pointer (&changed, mt_domain_info_free);
  changed = b->ops->get_domain (b, "55555555-5555-4555-8555-555555555555", &error);
  g_assert_no_error (error);
  g_assert_null (changed->overrides);
  g_assert_nonnull (strstr (changed->overrides_error, "memtide-events"));
  g_assert_nonnull (strstr (changed->overrides_error, "unknown element <mni>"));
  g_ptr_array_set_size (rec.events, 0);

  g_assert_cmpint (virDomainDestroy (dom), ==, 0);
  wait_for_event (&rec, "REMOVED 55555555-5555-4555-8555-555555555555");
  /* destroying a transient domain also undefines it: still one REMOVED */
  g_assert_cmpuint (rec.events->len, ==, 1);
}

static void
drop_log (const char *domain, GLogLevelFlags level, const char *message, gpointer data)
{
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  /* libvirt-glib logs every watch and timer update of its event loop,
   * at debug level and without a log domain; the TAP log drowns in it. */
  g_log_set_handler (NULL, G_LOG_LEVEL_DEBUG, drop_log, NULL);

  g_test_add_func ("/backend-libvirt/parse/live-vmem", test_parse_live_vmem);
  g_test_add_func ("/backend-libvirt/parse/plain", test_parse_plain);
  g_test_add_func ("/backend-libvirt/parse/units", test_parse_units);
  g_test_add_func ("/backend-libvirt/parse/errors", test_parse_errors);
  g_test_add_func ("/backend-libvirt/vmem-xml/update", test_vmem_update_xml);
  g_test_add_func ("/backend-libvirt/vmem-xml/refusals", test_vmem_update_xml_refusals);
  g_test_add_func ("/backend-libvirt/stats/sample", test_sample_from_stats);
  g_test_add_func ("/backend-libvirt/stats/partial", test_sample_from_stats_partial);
  g_test_add_func ("/backend-libvirt/format-size", test_format_size);
  g_test_add_func ("/backend-libvirt/bad-uri", test_bad_uri);
  g_test_add_func ("/backend-libvirt/node/list", test_node_list);
  g_test_add_func ("/backend-libvirt/node/get-domain", test_node_get_domain);
  g_test_add_func ("/backend-libvirt/node/collect", test_node_collect);
  g_test_add_func ("/backend-libvirt/node/collect-per-domain", test_node_collect_per_domain);
  g_test_add_func ("/backend-libvirt/node/set-balloon", test_node_set_balloon_refusals);
  g_test_add_func ("/backend-libvirt/node/set-vmem", test_node_set_vmem);
  g_test_add_func ("/backend-libvirt/node/set-balloon-in-threads",
                   test_node_set_balloon_in_threads);
  g_test_add_func ("/backend-libvirt/default/set-balloon", test_default_set_balloon);
  g_test_add_func ("/backend-libvirt/default/events", test_default_events);

  return g_test_run ();
}
