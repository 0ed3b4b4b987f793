/**
 * Business rule: "patchops: notify change state"
 *
 *   Table:      Change Request [change_request]
 *   When:       after        Insert: no   Update: yes   Order: 1000
 *   Advanced:   yes
 *   Condition:  current.correlation_display == 'patchops' &&
 *               (current.state.changes() || current.approval.changes() ||
 *                current.start_date.changes() || current.end_date.changes())
 *
 * Tells patchops (POST /webhooks/servicenow) that a change it opened moved: new state, approval,
 * or planned window. patchops maps the state (-5 New … 3 Closed, 4 Canceled) and approval to the patch
 * cycle: Scheduled / Implement let the cycle deploy, Canceled or a rejected approval end it with the
 * reason, a moved planned start moves the deployment.
 *
 * Uses the outbound REST message "patchops" / method "notify" (see outbound-rest-message.md), which
 * carries the endpoint and the X-PatchOps-Secret header. The call is asynchronous (executeAsync), so a
 * slow or unreachable patchops never blocks the change manager's save; patchops also polls every change
 * it waits on, so a lost notification only delays the cycle by the policy's change.pollSeconds.
 */
(function executeRule(current, previous /* null when async */) {
  var reason = '';
  if (String(current.state) === '4') {
    reason = String(current.close_notes || '');
  }
  if (String(current.approval) === 'rejected') {
    // The approver's comment on the rejected approval record.
    var appr = new GlideRecord('sysapproval_approver');
    appr.addQuery('sysapproval', current.getUniqueValue());
    appr.addQuery('state', 'rejected');
    appr.orderByDesc('sys_updated_on');
    appr.setLimit(1);
    appr.query();
    if (appr.next()) {
      reason = appr.comments.getJournalEntry(1).replace(/^.*\n/, '').trim() || reason;
    }
  }

  var payload = {
    number: String(current.number),
    sys_id: current.getUniqueValue(),
    correlation_id: String(current.correlation_id),
    state: String(current.state),
    state_label: String(current.state.getDisplayValue()),
    approval: String(current.approval),
    // glide_date_time values are UTC "yyyy-MM-dd HH:mm:ss"; patchops reads them as UTC.
    start_date: current.start_date.nil() ? '' : String(current.start_date.getValue()),
    end_date: current.end_date.nil() ? '' : String(current.end_date.getValue()),
    sys_updated_by: String(current.sys_updated_by),
    // With sys_id, lets patchops drop a redelivered notification.
    sys_mod_count: String(current.sys_mod_count),
    reason: reason,
  };

  try {
    var rm = new sn_ws.RESTMessageV2('patchops', 'notify');
    rm.setRequestBody(JSON.stringify(payload));
    rm.executeAsync();
  } catch (ex) {
    gs.warn('patchops: could not notify about ' + current.number + ': ' + ex.message);
  }
})(current, previous);
