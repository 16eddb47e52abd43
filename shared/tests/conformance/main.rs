//! One conformance suite per port, run against every adapter: the embedded adapters always,
//! the AWS adapters against the moto server that `infra/test.sh` starts
//! (`AWS_ENDPOINT_URL` must point at it; the suite refuses any non-loopback endpoint).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod backends;
mod queue_cases;
mod secretbox_cases;
mod table_cases;

/// Instantiates every case of a suite for one backend: `suite!(table_cases, embedded, make)`
/// makes `table_cases::embedded::<case>` tests calling `table_cases::<case>(make().await)`.
macro_rules! suite {
    ($cases:ident, $backend:ident, $make:path, [$($case:ident),+ $(,)?]) => {
        mod $backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    crate::$cases::$case($make().await).await;
                }
            )+
        }
    };
}

macro_rules! table_suite {
    ($backend:ident, $make:path) => {
        suite!(
            table_cases,
            $backend,
            $make,
            [
                conditional_put_rejects_a_duplicate,
                put_or_current_answers_a_failed_condition_with_the_stored_item,
                twenty_concurrent_conditional_puts_have_exactly_one_winner,
                transact_write_with_one_failing_condition_writes_nothing,
                transact_write_applies_every_action_together,
                query_by_partition_and_sort_key_prefix_pages_through_the_base_table,
                query_on_gsi_by_prefix_pages_and_skips_items_without_index_keys,
                query_backward_returns_descending_sort_keys,
                ttl_attribute_is_stored_as_a_number,
                update_upserts_increments_and_honours_its_condition,
                delete_returns_the_old_item_and_honours_its_condition,
                large_integers_are_stored_exactly,
                an_item_without_sort_key_is_rejected,
                a_foreign_cursor_is_rejected,
            ]
        );
    };
}

macro_rules! queue_suite {
    ($backend:ident, $make:path) => {
        suite!(
            queue_cases,
            $backend,
            $make,
            [
                sent_message_is_received_and_deleted,
                delay_hides_a_message_until_it_elapses,
                received_message_stays_hidden_for_its_visibility_timeout,
                message_received_max_receives_times_lands_in_the_dlq,
                batch_of_ten_is_sent_and_eleven_are_rejected,
                oversized_body_and_long_delay_are_rejected,
            ]
        );
    };
}

macro_rules! secretbox_suite {
    ($backend:ident, $make:path) => {
        suite!(
            secretbox_cases,
            $backend,
            $make,
            [
                seal_open_round_trip,
                open_with_a_different_context_fails,
                tampered_ciphertext_fails,
                sealed_text_does_not_contain_the_plaintext,
            ]
        );
    };
}

mod table {
    table_suite!(embedded, crate::backends::embedded_table);
    table_suite!(aws, crate::backends::dynamodb_table);
}

mod queue {
    queue_suite!(embedded, crate::backends::embedded_queue);
    queue_suite!(aws, crate::backends::sqs_queue);
}

mod secretbox {
    secretbox_suite!(embedded, crate::backends::local_secretbox);
    secretbox_suite!(aws, crate::backends::kms_secretbox);
}
