/* backend-libvirt-xml.c: reading libvirt's live domain XML, and writing
 * the virtio-mem device XML for a resize.  Pure: no connection.
 *
 * Memory accounting in libvirt's live XML (verified with libvirt 9.0 and
 * QEMU 7.2, see docs/driver-libvirt.md):
 *   <memory>         boot memory + the <size> of every memory device
 *   <currentMemory>  boot memory - balloon + virtio-mem <current>
 *   virtio-mem       <size> (max), <requested>, <current> (plugged)
 * The balloon only works on boot memory: libvirt refuses a balloon size
 * above <memory> - sum of device sizes ("cannot set memory higher than max
 * memory"), so that difference is MtDomainInfo.base_memory.
 */
#define G_LOG_DOMAIN "memtide-libvirt"

#include <string.h>
#include <gio/gio.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xpath.h>

#include "backend-libvirt.h"

G_DEFINE_AUTOPTR_CLEANUP_FUNC (xmlParserCtxt, xmlFreeParserCtxt)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (xmlDoc, xmlFreeDoc)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (xmlXPathContext, xmlXPathFreeContext)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (xmlXPathObject, xmlXPathFreeObject)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (xmlBuffer, xmlBufferFree)

/* xmlFree is a variable (a replaceable allocator), not a function. */
static void
xml_char_free (xmlChar *s)
{
  xmlFree (s);
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC (xmlChar, xml_char_free)

static xmlDoc *
parse_domain_doc (const char *xml, GError **error)
{
  g_autoptr (xmlParserCtxt) ctxt = xmlNewParserCtxt ();
  xmlDoc *doc;
  xmlNode *root;

  if (ctxt == NULL) {
    g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_FAILED, "cannot allocate an XML parser");
    return NULL;
  }
  /* NOERROR: libxml2 would print parse errors on stderr; we report them. */
  doc = xmlCtxtReadMemory (ctxt, xml, (int) strlen (xml), "domain.xml", NULL,
                           XML_PARSE_NONET | XML_PARSE_NOBLANKS | XML_PARSE_NOERROR
                             | XML_PARSE_NOWARNING);
  if (doc == NULL) {
    xmlError *e = xmlCtxtGetLastError (ctxt);
    g_autofree char *msg =
      g_strdup (e != NULL && e->message != NULL ? e->message : "unknown error");
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "malformed domain XML: %s",
                 g_strstrip (msg));
    return NULL;
  }
  root = xmlDocGetRootElement (doc);
  if (root == NULL || !xmlStrEqual (root->name, (const xmlChar *) "domain")) {
    g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                         "domain XML has no <domain> root element");
    xmlFreeDoc (doc);
    return NULL;
  }
  return doc;
}

/* All nodes @expr selects relative to @node; NULL when none. */
static xmlXPathObject *
xpath_nodes (xmlXPathContext *ctx, xmlNode *node, const char *expr)
{
  xmlXPathObject *obj;

  ctx->node = node;
  obj = xmlXPathEvalExpression ((const xmlChar *) expr, ctx);
  if (obj != NULL && (obj->type != XPATH_NODESET || xmlXPathNodeSetIsEmpty (obj->nodesetval)))
    g_clear_pointer (&obj, xmlXPathFreeObject);
  return obj;
}

/* The first node @expr selects relative to @node (it belongs to the
 * document, not to the XPath result), or NULL. */
static xmlNode *
xpath_node (xmlXPathContext *ctx, xmlNode *node, const char *expr)
{
  g_autoptr (xmlXPathObject) obj = xpath_nodes (ctx, node, expr);

  return obj != NULL ? obj->nodesetval->nodeTab[0] : NULL;
}

/* Text of the first node @expr selects (an element or an attribute),
 * stripped; NULL when absent or empty. */
static char *
xpath_text (xmlXPathContext *ctx, xmlNode *node, const char *expr)
{
  xmlNode *n = xpath_node (ctx, node, expr);
  g_autoptr (xmlChar) content = n != NULL ? xmlNodeGetContent (n) : NULL;
  g_autofree char *text = NULL;

  if (content == NULL)
    return NULL;
  text = g_strstrip (g_strdup ((const char *) content));
  return *text != '\0' ? g_steal_pointer (&text) : NULL;
}

/* libvirt's size units (virScaleInteger): b/byte/bytes, a one-letter
 * prefix or prefix+"iB" for powers of 1024, prefix+"B" for powers of
 * 1000; case-insensitive. */
static gboolean
unit_scale (const char *unit, guint64 *scale)
{
  static const char prefixes[] = "kmgtpe";
  const char *p;
  guint64 base;

  if (g_ascii_strcasecmp (unit, "b") == 0 || g_ascii_strcasecmp (unit, "byte") == 0
      || g_ascii_strcasecmp (unit, "bytes") == 0) {
    *scale = 1;
    return TRUE;
  }
  if (unit[0] == '\0' || (p = strchr (prefixes, g_ascii_tolower (unit[0]))) == NULL)
    return FALSE;
  if (unit[1] == '\0' || g_ascii_strcasecmp (unit + 1, "iB") == 0)
    base = 1024;
  else if (g_ascii_strcasecmp (unit + 1, "B") == 0)
    base = 1000;
  else
    return FALSE;

  *scale = 1;
  for (const char *q = prefixes; q <= p; q++)
    *scale *= base;
  return TRUE;
}

/* A libvirt scaled size (default unit KiB) in bytes; MT_UNKNOWN when the
 * element is absent. */
static gboolean
xpath_size (xmlXPathContext *ctx, xmlNode *node, const char *expr, guint64 *bytes, GError **error)
{
  xmlNode *n = xpath_node (ctx, node, expr);
  g_autoptr (xmlChar) content = NULL;
  g_autoptr (xmlChar) unit = NULL;
  g_autofree char *text = NULL;
  guint64 value, scale;

  *bytes = MT_UNKNOWN;
  if (n == NULL)
    return TRUE;

  content = xmlNodeGetContent (n);
  unit = xmlGetProp (n, (const xmlChar *) "unit");
  text = g_strstrip (g_strdup (content != NULL ? (const char *) content : ""));
  if (!g_ascii_string_to_unsigned (text, 10, 0, G_MAXUINT64, &value, NULL)) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "domain XML: <%s> is not a size: '%s'",
                 (const char *) n->name, text);
    return FALSE;
  }
  if (!unit_scale (unit != NULL ? (const char *) unit : "KiB", &scale)) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                 "domain XML: <%s> has an unknown unit '%s'", (const char *) n->name,
                 (const char *) unit);
    return FALSE;
  }
  if (value > (MT_UNKNOWN - 1) / scale) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "domain XML: <%s> is too large: %s %s",
                 (const char *) n->name, text, (const char *) unit);
    return FALSE;
  }
  *bytes = value * scale;
  return TRUE;
}

static gboolean
parse_virtio_mem (xmlXPathContext *ctx, xmlNode *dev, MtDomainInfo *info, GError **error)
{
  if (!xpath_size (ctx, dev, "target/block", &info->vmem_block, error)
      || !xpath_size (ctx, dev, "target/requested", &info->vmem_requested, error)
      || !xpath_size (ctx, dev, "target/current", &info->vmem_plugged, error))
    return FALSE;

  if (info->vmem_block == MT_UNKNOWN || info->vmem_block == 0) {
    g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                         "domain XML: virtio-mem device without a block size");
    return FALSE;
  }
  /* libvirt's default; <current> stays MT_UNKNOWN (older libvirt). */
  if (info->vmem_requested == MT_UNKNOWN)
    info->vmem_requested = 0;
  info->vmem_alias = xpath_text (ctx, dev, "alias/@name");
  return TRUE;
}

MtDomainInfo *
mt_libvirt_parse_domain_xml (const char *xml, GError **error)
{
  g_autoptr (xmlDoc) doc = parse_domain_doc (xml, error);
  g_autoptr (xmlXPathContext) ctx = NULL;
  g_autoptr (xmlXPathObject) devices = NULL;
  g_autoptr (MtDomainInfo) info = NULL;
  g_autofree char *channel_expr = NULL;
  xmlNode *root;
  guint64 memory, device_total = 0;
  gboolean have_vmem = FALSE;

  if (doc == NULL)
    return NULL;
  root = xmlDocGetRootElement (doc);
  ctx = xmlXPathNewContext (doc);

  info = g_new0 (MtDomainInfo, 1);
  info->name = xpath_text (ctx, root, "name");
  info->uuid = xpath_text (ctx, root, "uuid");
  if (info->name == NULL || info->uuid == NULL) {
    g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                         "domain XML without <name> or <uuid>");
    return NULL;
  }

  if (!xpath_size (ctx, root, "memory", &memory, error))
    return NULL;
  if (memory == MT_UNKNOWN) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "domain XML of '%s' has no <memory>",
                 info->name);
    return NULL;
  }

  /* Every memory device (dimm, nvdimm, virtio-mem, ...) is counted in
   * <memory>; only the first virtio-mem device is driven by memtide. */
  devices = xpath_nodes (ctx, root, "devices/memory");
  for (int i = 0; devices != NULL && i < devices->nodesetval->nodeNr; i++) {
    xmlNode *dev = devices->nodesetval->nodeTab[i];
    g_autoptr (xmlChar) model = xmlGetProp (dev, (const xmlChar *) "model");
    guint64 size;

    if (!xpath_size (ctx, dev, "target/size", &size, error))
      return NULL;
    if (size == MT_UNKNOWN)
      size = 0;
    device_total += size;

    if (!xmlStrEqual (model, (const xmlChar *) "virtio-mem"))
      continue;
    if (have_vmem) {
      g_debug ("domain '%s': ignoring a second virtio-mem device", info->name);
      continue;
    }
    have_vmem = TRUE;
    info->vmem_size = size;
    if (!parse_virtio_mem (ctx, dev, info, error))
      return NULL;
  }
  if (device_total > memory) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                 "domain XML of '%s': memory devices (%" G_GUINT64_FORMAT
                 " bytes) exceed <memory> (%" G_GUINT64_FORMAT " bytes)",
                 info->name, device_total, memory);
    return NULL;
  }
  info->base_memory = memory - device_total;

  channel_expr = g_strdup_printf ("devices/channel[@type='unix']"
                                  "[target/@type='virtio' and target/@name='%s']/source/@path",
                                  MT_LIBVIRT_AGENT_PORT);
  info->agent_socket = xpath_text (ctx, root, channel_expr);

  return g_steal_pointer (&info);
}

char *
mt_libvirt_format_size (guint64 bytes)
{
  if (bytes % MT_MIB == 0)
    return g_strdup_printf ("%" G_GUINT64_FORMAT " MiB", bytes / MT_MIB);
  if (bytes % MT_KIB == 0)
    return g_strdup_printf ("%" G_GUINT64_FORMAT " KiB", bytes / MT_KIB);
  return g_strdup_printf ("%" G_GUINT64_FORMAT " bytes", bytes);
}

char *
mt_libvirt_vmem_update_xml (const char *domain_xml, guint64 requested, GError **error)
{
  g_autoptr (xmlDoc) doc = parse_domain_doc (domain_xml, error);
  g_autoptr (xmlXPathContext) ctx = NULL;
  g_autoptr (xmlBuffer) buf = NULL;
  g_autofree char *kib = NULL;
  xmlNode *root, *dev, *target, *req;
  guint64 size, block;

  if (doc == NULL)
    return NULL;
  root = xmlDocGetRootElement (doc);
  ctx = xmlXPathNewContext (doc);

  dev = xpath_node (ctx, root, "devices/memory[@model='virtio-mem']");
  target = dev != NULL ? xpath_node (ctx, dev, "target") : NULL;
  if (target == NULL) {
    g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
                         "the domain has no virtio-mem device");
    return NULL;
  }
  if (!xpath_size (ctx, target, "size", &size, error)
      || !xpath_size (ctx, target, "block", &block, error))
    return NULL;
  if (size == MT_UNKNOWN || block == MT_UNKNOWN || block == 0) {
    g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                         "the virtio-mem device has no <size> or <block>");
    return NULL;
  }
  if (requested % block != 0 || requested % MT_KIB != 0) {
    g_autofree char *block_str = mt_libvirt_format_size (block);
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                 "not a multiple of the virtio-mem block size (%s)", block_str);
    return NULL;
  }
  if (requested > size) {
    g_autofree char *size_str = mt_libvirt_format_size (size);
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                 "above the virtio-mem device size (%s)", size_str);
    return NULL;
  }

  /* libvirt 9.0 finds the device to update by its <address> and drives
   * QEMU by its <alias>, and refuses any other change (size, block, node):
   * so send the live device back whole, with only <requested> changed. */
  req = xpath_node (ctx, target, "requested");
  if (req == NULL)
    req = xmlNewChild (target, NULL, (const xmlChar *) "requested", NULL);
  kib = g_strdup_printf ("%" G_GUINT64_FORMAT, requested / MT_KIB);
  xmlNodeSetContent (req, (const xmlChar *) kib);
  xmlSetProp (req, (const xmlChar *) "unit", (const xmlChar *) "KiB");

  buf = xmlBufferCreate ();
  if (xmlNodeDump (buf, doc, dev, 0, 0) < 0) {
    g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_FAILED,
                         "cannot format the virtio-mem device XML");
    return NULL;
  }
  return g_strdup ((const char *) xmlBufferContent (buf));
}
