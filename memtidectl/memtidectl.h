/* memtidectl.h: the parts of memtidectl, the command line client of
 * memtided's D-Bus API (org.memtide.Manager1.xml):
 *   memtidectl.c         arguments, commands, exit codes
 *   memtidectl-bus.c     the bus: connecting, the generated proxies,
 *                        errors -> messages
 *   memtidectl-format.c  tables, sizes and JSON
 *   memtidectl-leases.c  reserve and pin: leases held while it runs
 *   memtidectl-watch.c   the live view */
#pragma once

#include <gio/gio.h>
#include <json-glib/json-glib.h>

#include "memtide-dbus-generated.h"

/* Exit codes (documented in memtidectl(1)). */
typedef enum {
  MT_EXIT_OK = 0,
  MT_EXIT_FAILED = 1,         /* memtided refused or failed the request */
  MT_EXIT_USAGE = 2,          /* bad command line, or a value memtided calls invalid */
  MT_EXIT_UNREACHABLE = 3,    /* memtided not running, or the bus not reachable */
  MT_EXIT_NOT_AUTHORIZED = 4, /* polkit (or the bus policy) said no */
  MT_EXIT_NOT_FOUND = 5,      /* no such VM, pin or reservation */
  MT_EXIT_NO_ROOM = 6,        /* a reservation could not be made */
} MtExit;

#define MTCTL_BUS_NAME "org.memtide.Manager1"
#define MTCTL_PATH     "/org/memtide/Manager1"

typedef struct {
  /* global options */
  char *address; /* NULL = the system bus */
  gboolean json;
  gboolean ask_password; /* let polkit prompt (stdin is a terminal) */
  /* command options */
  char *reason;
  guint timeout; /* seconds */
  gboolean wait;
  char **command;  /* after "--" */
  double interval; /* watch, seconds */

  GDBusConnection *bus;
} MtCtl;

/* memtidectl-bus.c */
/* Prints what went wrong and what to do; returns the exit code. */
int mtctl_fail (MtCtl *ctl, const GError *error);
/* Prints a usage error; returns MT_EXIT_USAGE. */
int mtctl_usage_error (const char *format, ...) G_GNUC_PRINTF (1, 2);
gboolean mtctl_connect (MtCtl *ctl, GError **error);

/* What a proxy is for: its properties (read once, as it is made), its
 * signals, or only method calls.  A proxy never starts memtided. */
#define MTCTL_PROXY_PROPERTIES G_DBUS_PROXY_FLAGS_DO_NOT_CONNECT_SIGNALS
#define MTCTL_PROXY_SIGNALS    G_DBUS_PROXY_FLAGS_DO_NOT_LOAD_PROPERTIES
#define MTCTL_PROXY_CALLS \
  (G_DBUS_PROXY_FLAGS_DO_NOT_LOAD_PROPERTIES | G_DBUS_PROXY_FLAGS_DO_NOT_CONNECT_SIGNALS)
/* Manager1 (the host object). */
MtDbusManager1 *mtctl_manager (MtCtl *ctl, GDBusProxyFlags flags, GError **error);
/* A VM's object, as GetVM names it. */
MtDbusVM1 *mtctl_vm (MtCtl *ctl, const char *path, GDBusProxyFlags flags, GError **error);
/* Every VM's object with its properties (the ObjectManager). */
GDBusObjectManager *mtctl_vm_objects (MtCtl *ctl, GError **error);
/* A proxy's properties as a{sv}, in the order of the XML, as GetAll gives
 * them; fails when memtided sent none. */
GVariant *mtctl_properties (gpointer proxy, GError **error);

/* How a method is called: a write may ask polkit, which may prompt. */
typedef enum {
  MTCTL_READ,
  MTCTL_WRITE,
} MtCtlAccess;
GDBusCallFlags mtctl_call_flags (MtCtl *ctl, MtCtlAccess access);
int mtctl_call_timeout (MtCtl *ctl, MtCtlAccess access);

/* The object of a VM given by name or UUID (GetVM). */
char *mtctl_vm_path (MtCtl *ctl, MtDbusManager1 *manager, const char *vm, GError **error);
/* ListVMs: aa{sv}. */
GVariant *mtctl_list_vms (MtCtl *ctl, MtDbusManager1 *manager, GError **error);

/* memtidectl-format.c */
char *mtctl_size (guint64 bytes); /* "1.5 GiB"; 0 -> "-" */
gboolean mtctl_parse_size (const char *text, guint64 *out, GError **error);
/* A GVariant (a{sv}, aa{sv}, ...) as JSON: the keys are the D-Bus names,
 * sizes exact bytes. */
JsonNode *mtctl_json_from_variant (GVariant *value);
void mtctl_print_json (JsonNode *node);
/* {"host": Manager1's properties, "vms": ListVMs}. */
JsonNode *mtctl_status_json (GVariant *host, GVariant *vms);
/* {"key": value}; takes a floating value. */
void mtctl_print_json_member (const char *key, GVariant *value);
/* The host summary above the VM table. */
void mtctl_print_host (GVariant *host);
/* A table of VMs (aa{sv} from ListVMs), at most width columns (0 = any). */
void mtctl_print_vm_table (GVariant *vms, guint width);
/* One VM's properties, a line each. */
void mtctl_print_vm (GVariant *vm);
guint mtctl_terminal_width (void);

/* memtidectl-watch.c: refreshes count times (0 = until Ctrl-C). */
int mtctl_cmd_watch (MtCtl *ctl, guint count);

/* memtidectl-leases.c */
int mtctl_cmd_reserve (MtCtl *ctl, const char *size);
int mtctl_cmd_pin (MtCtl *ctl, const char *vm, const char *size);
