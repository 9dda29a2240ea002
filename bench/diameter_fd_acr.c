/* A freeDiameter 1.2 extension for bench/diameter_vs_freediameter.sh: answers
 * every ACR (base accounting, application 3) with 2001, echoing
 * Accounting-Record-Type and -Number, and accepts any peer without TLS.
 * The same work imeilockd's front-end does with an immediately-acking sink. */

#include <freeDiameter/extension.h>

static struct dict_object *d_app, *d_acr, *d_type, *d_number;
static struct disp_hdl* acr_handler;

static int echo_avp(struct msg* req, struct msg* ans, struct dict_object* model) {
  struct avp *src = NULL, *copy = NULL;
  struct avp_hdr* hdr = NULL;
  if (fd_msg_search_avp(req, model, &src) != 0 || src == NULL)
    return 0;
  CHECK_FCT(fd_msg_avp_hdr(src, &hdr));
  CHECK_FCT(fd_msg_avp_new(model, 0, &copy));
  CHECK_FCT(fd_msg_avp_setvalue(copy, hdr->avp_value));
  CHECK_FCT(fd_msg_avp_add(ans, MSG_BRW_LAST_CHILD, copy));
  return 0;
}

static int on_acr(struct msg** msg, struct avp* avp, struct session* sess, void* opaque,
                  enum disp_action* act) {
  struct msg *ans, *req;
  (void)avp;
  (void)sess;
  (void)opaque;
  req = *msg;
  CHECK_FCT(fd_msg_new_answer_from_req(fd_g_config->cnf_dict, msg, 0));
  ans = *msg;
  CHECK_FCT(fd_msg_rescode_set(ans, "DIAMETER_SUCCESS", NULL, NULL, 1));
  CHECK_FCT(echo_avp(req, ans, d_type));
  CHECK_FCT(echo_avp(req, ans, d_number));
  CHECK_FCT(fd_msg_send(msg, NULL, NULL));
  *act = DISP_ACT_CONT;
  return 0;
}

/* Accept every peer, without TLS (loopback benchmark only). */
static int accept_peer(struct peer_info* info, int* auth, int (**cb2)(struct peer_info*)) {
  (void)cb2;
  info->config.pic_flags.sec |= PI_SEC_NONE;
  *auth = 1;
  return 0;
}

static int entry(char* conffile) {
  application_id_t acct = 3;
  struct disp_when when;
  (void)conffile;
  CHECK_FCT(fd_dict_search(fd_g_config->cnf_dict, DICT_APPLICATION, APPLICATION_BY_ID, &acct,
                           &d_app, ENOENT));
  CHECK_FCT(fd_dict_search(fd_g_config->cnf_dict, DICT_COMMAND, CMD_BY_NAME, "Accounting-Request",
                           &d_acr, ENOENT));
  CHECK_FCT(fd_dict_search(fd_g_config->cnf_dict, DICT_AVP, AVP_BY_NAME, "Accounting-Record-Type",
                           &d_type, ENOENT));
  CHECK_FCT(fd_dict_search(fd_g_config->cnf_dict, DICT_AVP, AVP_BY_NAME, "Accounting-Record-Number",
                           &d_number, ENOENT));
  memset(&when, 0, sizeof when);
  when.app = d_app;
  when.command = d_acr;
  CHECK_FCT(fd_disp_register(on_acr, DISP_HOW_CC, &when, NULL, &acr_handler));
  CHECK_FCT(fd_disp_app_support(d_app, NULL, 0, 1));
  CHECK_FCT(fd_peer_validate_register(accept_peer));
  return 0;
}

EXTENSION_ENTRY("imeilock_bench_acr", entry);
