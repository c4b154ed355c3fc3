//! Optional parts (Telegram, the default webhooks) against moto's SSM: a part whose parameter
//! does not exist is off, never the function's end; one that is there is read.

use aws_sdk_ssm::types::ParameterType;

use exporter_adapters::ssm::parameter_or_off;
use integration_tests::{aws_at, endpoint};

#[tokio::test]
async fn an_optional_part_whose_parameter_cannot_be_read_is_off_and_one_that_can_is_on() {
    let Some(moto) = endpoint("MOTO_ENDPOINT", "moto") else {
        return;
    };
    let ssm = aws_sdk_ssm::Client::new(&aws_at(&moto).await);
    let name = format!("/exporter/test/{}", uuid::Uuid::new_v4());
    assert!(
        parameter_or_off(&ssm, &name, "Telegram")
            .await
            .expect("no error")
            .is_none(),
        "a parameter that does not exist switches the part off"
    );
    ssm.put_parameter()
        .name(&name)
        .value("123:bot-token")
        .r#type(ParameterType::SecureString)
        .send()
        .await
        .expect("moto stores the parameter");
    let token = parameter_or_off(&ssm, &name, "Telegram")
        .await
        .expect("no error")
        .expect("read");
    assert_eq!(token.expose(), "123:bot-token");
}
